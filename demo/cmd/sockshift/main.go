// Command sockshift moves live TCP connections between servers: the demo
// appliance, its lab, the server agent, the verifying client, and the
// hand-off trigger.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sockshift/sockshift/demo/appliance"
	"github.com/sockshift/sockshift/demo/client"
	"github.com/sockshift/sockshift/demo/console"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/web"
)

const usage = `sockshift moves live TCP connections between servers, the client unaware.

Usage:
  sockshift demo    [--listen 127.0.0.1:8080] [--lab-prefix ss] [--no-client] [--break-hold 10s] [--servers 2]
  sockshift lab     up|down|status [--prefix ss] [--servers 2]
  sockshift node    --config FILE | --name a --addr 192.0.2.1 --peer b=192.0.2.2 --key-file F --control SOCK|ADDR:PORT [--hold]
  sockshift console --config FILE | --nodes a=HOST:PORT,b=HOST:PORT --key-file F [--listen ADDR] [--vip IP]
  sockshift client  [--addr 192.0.2.100:7] [--mode ping|stream] [--conns N] [--duration D] [--json]
  sockshift handoff [--lab-prefix ss | --console 127.0.0.1:8080] [--to a|b|...] [--service chat[,echo]] [--token T] [--json]
  sockshift bench   [--prefix ssb] [--handoffs 200] [--bulk 1,100,1000,2000,10000] [--stream-duration 10s] [--quick] [--json] [--svg FILE]

Run "sockshift <command> --help" for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1], os.Args[2:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sockshift:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

func run(ctx context.Context, cmd string, args []string) error {
	switch cmd {
	case "demo":
		return runDemo(ctx, args)
	case "lab":
		return runLab(ctx, args)
	case "node":
		var m node.Main
		if err := m.ParseFlags(args); err != nil {
			return err
		}
		return m.Run(ctx)
	case "console":
		var m console.Main
		if err := m.ParseFlags(args); err != nil {
			return err
		}
		return m.Run(ctx)
	case "client":
		return runClient(ctx, args)
	case "handoff":
		return runHandoff(ctx, args)
	case "bench":
		return runBench(ctx, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q\n\n%s", cmd, usage)}
}

func runDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sockshift demo", flag.ContinueOnError)
	var cfg appliance.Config
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "console address")
	fs.StringVar(&cfg.Prefix, "lab-prefix", lab.DefaultPrefix, "lab name prefix (several labs can run side by side)")
	fs.BoolVar(&cfg.NoClient, "no-client", false, "no built-in demo client (attach your own)")
	fs.IntVar(&cfg.Servers, "servers", lab.DefaultServers, fmt.Sprintf("how many servers (2 to %d: a, b, c, ...)", lab.MaxServers))
	fs.StringVar(&cfg.Token, "token", os.Getenv("SOCKSHIFT_TOKEN"), "bearer token for changes when --listen is not loopback")
	fs.DurationVar(&cfg.BreakHold, "break-hold", appliance.DefaultBreakHold, "how long a hand-off broken on purpose (break it) stays broken before the console puts it right")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return appliance.Run(ctx, cfg)
}

func runLab(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New("lab: want up, down or status")}
	}
	fs := flag.NewFlagSet("sockshift lab", flag.ContinueOnError)
	prefix := fs.String("prefix", lab.DefaultPrefix, "lab name prefix")
	servers := fs.Int("servers", lab.DefaultServers, fmt.Sprintf("lab up: how many servers (2 to %d: a, b, c, ... at 192.0.2.1, .2, .3, ...)", lab.MaxServers))
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := lab.ValidatePrefix(*prefix); err != nil {
		return err
	}
	if err := lab.ValidateServers(*servers); err != nil {
		return usageError{err}
	}
	if err := lab.CheckPrerequisites(); err != nil {
		return err
	}
	switch args[0] {
	case "up":
		l, err := lab.UpServers(ctx, *prefix, *servers)
		if errors.Is(err, lab.ErrExists) {
			fmt.Printf("lab %q is already up\n", *prefix)
			err = nil
		}
		if err != nil {
			return err
		}
		printLab(l)
		return nil
	case "down":
		if err := lab.Down(ctx, *prefix); err != nil {
			return err
		}
		fmt.Printf("lab %q is down\n", *prefix)
		return nil
	case "status":
		l, err := lab.Status(ctx, *prefix)
		if err != nil {
			return err
		}
		printLab(l)
		return nil
	}
	return usageError{fmt.Errorf("lab: unknown action %q (want up, down or status)", args[0])}
}

func printLab(l *lab.Lab) {
	fmt.Printf("lab %q: switch namespace %s, VIP %s\n", l.Prefix, l.Switch, lab.VIP)
	for _, h := range l.Hosts() {
		fmt.Printf("  %-7s %-12s %-18s %s\n", h.Role, h.Namespace, h.Addr, h.MAC)
	}
}

func runClient(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sockshift client", flag.ContinueOnError)
	var cfg client.Config
	fs.StringVar(&cfg.Addr, "addr", "192.0.2.100:7", "echo service address")
	fs.StringVar(&cfg.Mode, "mode", client.Ping, "ping (round trips) or stream (verified byte stream)")
	fs.IntVar(&cfg.Conns, "conns", 1, "connections")
	fs.IntVar(&cfg.Rate, "rate", 0, "stream: bytes per second per connection (0: full speed)")
	fs.DurationVar(&cfg.Interval, "interval", 10*time.Millisecond, "ping: pause between pings")
	fs.IntVar(&cfg.Size, "size", 64, "ping: message size in bytes")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to run (0: until Ctrl-C)")
	// A class in step mode holds the connection frozen while it talks
	// (minutes); a person's client must outlast that.
	fs.DurationVar(&cfg.Stall, "stall", 10*time.Minute, "how long to wait for owed data before counting an error (a step-mode hand-off holds the connection frozen as long as the class takes)")
	asJSON := fs.Bool("json", false, "print one JSON line a second and at the end")
	if err := fs.Parse(args); err != nil {
		return err
	}
	show := func(st client.Stats) {
		if *asJSON {
			b, _ := json.Marshal(st)
			fmt.Println(string(b))
			return
		}
		fmt.Printf("%6.1fs %s: %d bytes verified, %d pings, %d errors, rtt %dus (max %dus), worst gap %dus, %d retransmits, %d timeouts\n",
			float64(st.ElapsedMS)/1000, st.Mode, st.Bytes, st.Pings, st.Errors, st.LastRTTus, st.MaxRTTus, st.WorstGapUS, st.Retransmits, st.RTOs)
	}
	cfg.Every = show
	st, err := client.Run(ctx, cfg)
	show(st)
	return err
}

func runHandoff(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("sockshift handoff", flag.ContinueOnError)
	console := fs.String("console", "", "the console's address (default: the one the running demo of --lab-prefix wrote down, else 127.0.0.1:8080)")
	prefix := fs.String("lab-prefix", lab.DefaultPrefix, "the lab prefix the demo was started with, to find its console")
	to := fs.String("to", "", "the server to hand off to, by name (default: the one after the VIP's holder)")
	token := fs.String("token", os.Getenv("SOCKSHIFT_TOKEN"), "bearer token, if the console needs one")
	services := fs.String("service", "", "move only these services (comma-separated: echo, chat), each with its address; default every service")
	asJSON := fs.Bool("json", false, "print the console's whole report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *console == "" {
		*console = appliance.ConsoleAddr(*prefix)
	}
	if *console == "" {
		*console = "127.0.0.1:8080"
	}
	hreq := struct {
		To       string   `json:"to"`
		Services []string `json:"services,omitempty"`
	}{To: *to}
	if *services != "" {
		hreq.Services = strings.Split(*services, ",")
	}
	body, _ := json.Marshal(hreq)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+*console+"/api/handoff", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("handoff: console %s: %w (is `sockshift demo` running? --lab-prefix or --console says which)", *console, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if *asJSON {
		var pretty bytes.Buffer
		if json.Indent(&pretty, out, "", "  ") == nil {
			out = pretty.Bytes()
		}
		fmt.Println(string(out))
	} else {
		var rep web.Report
		if json.Unmarshal(out, &rep) != nil {
			fmt.Println(strings.TrimSpace(string(out)))
		} else {
			fmt.Println(reportLine(rep))
		}
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("handoff: %s", resp.Status)
	}
	return nil
}

// reportLine is a hand-off's report in one line, for a person.
func reportLine(r web.Report) string {
	name := func(role string) string {
		if role == "" {
			return "?"
		}
		return strings.ToUpper(role)
	}
	if !r.OK {
		s := fmt.Sprintf("hand-off %s → %s failed: %s", name(r.From), name(r.To), r.Error)
		if r.RolledBack {
			s += fmt.Sprintf("; nothing moved, %d connections still on %s", len(r.Remaining), name(r.From))
		}
		return s
	}
	s := fmt.Sprintf("%s → %s: %d connections moved (%s on %s)", name(r.From), name(r.To), r.Connections,
		strings.Join(r.Services, ", "), strings.Join(r.Addresses, ", "))
	if len(r.Stayed) > 0 {
		s += fmt.Sprintf(", %d stayed on %s", len(r.Stayed), name(r.From))
	}
	s += fmt.Sprintf(", freeze to resume %s", micros(r.TotalUS))
	if r.GapUS > 0 {
		s += ", client-visible gap " + micros(r.GapUS)
	}
	s += fmt.Sprintf(", %d client frames caught (--json for the whole report)", r.Caught)
	return s
}

func micros(us int64) string {
	if us >= 1000_000 {
		return fmt.Sprintf("%.1f s", float64(us)/1e6)
	}
	return fmt.Sprintf("%.2f ms", float64(us)/1000)
}
