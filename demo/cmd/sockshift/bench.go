package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sockshift/sockshift/demo/bench"
	"github.com/sockshift/sockshift/demo/lab"
)

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sockshift bench", flag.ContinueOnError)
	var cfg bench.Config
	fs.StringVar(&cfg.Prefix, "prefix", bench.DefaultPrefix, "lab name prefix (its own lab, so it can run beside a demo)")
	fs.IntVar(&cfg.Handoffs, "handoffs", 200, "ping-pong hand-offs")
	bulk := fs.String("bulk", "1,100,1000,2000,10000", "bulk connection counts, comma-separated")
	fs.DurationVar(&cfg.StreamDuration, "stream-duration", 10*time.Second, "length of the full-speed stream")
	fs.IntVar(&cfg.StreamHandoffs, "stream-handoffs", 20, "hand-offs during the stream")
	fs.IntVar(&cfg.Baseline, "baseline", 10, "plain fail-overs for the baseline without sockshift")
	fs.IntVar(&cfg.Soak, "soak", 0, "run the soak instead: this many hand-offs back to back under load, with the servers' memory and open files from start to end")
	fs.IntVar(&cfg.Streams, "streams", 2, "soak: verified full-speed streams riding along")
	fs.IntVar(&cfg.ChatClients, "chat-clients", 200, fmt.Sprintf("soak: idle chat clients registered in #lab (at most %d)", bench.ChatMaxClients))
	quick := fs.Bool("quick", false, "smoke run for CI: 5 hand-offs, bulk 1,100, a 3 s stream, 2 fail-overs (flags given explicitly still win)")
	asJSON := fs.Bool("json", false, "print one JSON document instead of the table")
	svgFile := fs.String("svg", "", "also write the plots to this SVG file")
	logFile := fs.String("server-log", "", "write the servers' logs here (default: a file in the temp directory)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: sockshift bench [flags]\n\nMeasures hand-offs in a lab of its own, against a plain fail-over. Needs root.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("bench: unexpected argument %q (flags only; see sockshift bench --help)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		quickDefaults := map[string]func(){
			"handoffs":        func() { cfg.Handoffs = 5 },
			"bulk":            func() { *bulk = "1,100" },
			"stream-duration": func() { cfg.StreamDuration = 3 * time.Second },
			"stream-handoffs": func() { cfg.StreamHandoffs = 5 },
			"baseline":        func() { cfg.Baseline = 2 },
		}
		for name, apply := range quickDefaults {
			if !set[name] {
				apply()
			}
		}
	}
	var err error
	if cfg.Bulk, err = parseCounts(*bulk); err != nil {
		return usageError{err}
	}
	switch {
	case cfg.Handoffs < 1:
		return usageError{fmt.Errorf("bench: --handoffs %d: want at least 1", cfg.Handoffs)}
	case cfg.StreamHandoffs < 1:
		return usageError{fmt.Errorf("bench: --stream-handoffs %d: want at least 1", cfg.StreamHandoffs)}
	case cfg.Baseline < 1:
		return usageError{fmt.Errorf("bench: --baseline %d: want at least 1", cfg.Baseline)}
	case cfg.Soak < 0:
		return usageError{fmt.Errorf("bench: --soak %d: want a number of hand-offs", cfg.Soak)}
	case cfg.Soak > 0 && cfg.Streams < 1:
		return usageError{fmt.Errorf("bench: --streams %d: want at least 1", cfg.Streams)}
	case cfg.ChatClients < 0 || cfg.ChatClients > bench.ChatMaxClients:
		return usageError{fmt.Errorf("bench: --chat-clients %d: want 0 to %d (the node's chat server's limit)", cfg.ChatClients, bench.ChatMaxClients)}
	case cfg.Soak > 0 && *svgFile != "":
		return usageError{errors.New("bench: --svg plots the measurements, not the soak: drop one of --svg and --soak")}
	case cfg.StreamDuration < time.Second:
		return usageError{fmt.Errorf("bench: --stream-duration %v: want at least 1s", cfg.StreamDuration)}
	}
	if err := lab.ValidatePrefix(cfg.Prefix); err != nil {
		return usageError{err}
	}
	// Before any file is made: not being root is the likeliest mistake.
	if err := lab.CheckPrerequisites(); err != nil {
		return err
	}
	cfg.Command = strings.Join(append([]string{"sockshift bench"}, args...), " ")

	// Create the SVG file now: a bad path should fail before a long run.
	var svg *os.File
	if *svgFile != "" {
		if svg, err = os.Create(*svgFile); err != nil {
			return fmt.Errorf("bench: --svg: %w", err)
		}
		defer svg.Close()
	}
	if *logFile == "" {
		*logFile = filepath.Join(os.TempDir(), "sockshift-bench-"+cfg.Prefix+".log")
	}
	logs, err := os.Create(*logFile)
	if err != nil {
		return fmt.Errorf("bench: server log: %w", err)
	}
	defer logs.Close()
	cfg.NodeOutput = logs
	fmt.Fprintf(os.Stderr, "bench: servers log to %s\n", *logFile)

	res, err := bench.Run(ctx, cfg, os.Stderr)
	if err != nil {
		if svg != nil {
			svg.Close()
			os.Remove(*svgFile)
		}
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else if res.Soak != nil {
		res.WriteSoakTable(os.Stdout)
	} else {
		res.WriteTable(os.Stdout)
	}
	if svg != nil {
		if err := res.WriteSVG(svg); err != nil {
			return fmt.Errorf("bench: --svg: %w", err)
		}
		if err := svg.Close(); err != nil {
			return fmt.Errorf("bench: --svg: %w", err)
		}
		fmt.Fprintf(os.Stderr, "bench: plots written to %s\n", *svgFile)
	}
	return res.Err()
}

// parseCounts reads a comma-separated list of positive connection counts.
func parseCounts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bench: --bulk %q: want positive connection counts separated by commas, like 1,100,1000", s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("bench: --bulk is empty: give at least one connection count, like 1,100")
	}
	return out, nil
}
