package bench_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/bench"
	"github.com/sockshift/sockshift/demo/internal/labtest"
)

func TestTinyBench(t *testing.T) {
	exe := labtest.Binary(t)           // skips outside CI without root
	dir, err := os.MkdirTemp("", "ss") // short: control sockets live here
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var logs, progress labtest.Output
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := bench.Run(ctx, bench.Config{
		Prefix: labtest.Prefix(), Exe: exe, RunDir: dir, NodeOutput: &logs,
		Handoffs: 3, StreamDuration: time.Second, StreamHandoffs: 2,
		Bulk: []int{1, 10}, Baseline: 3, Command: "TestTinyBench",
	}, &progress)
	defer func() {
		if t.Failed() {
			t.Logf("progress:\n%s\nservers:\n%s", progress.String(), logs.String())
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Errorf("problems: %q", res.Problems)
	}
	if res.Ping.Handoffs != 3 || len(res.Ping.PerHandoff) != 3 {
		t.Errorf("ping-pong: %d hand-offs, want 3", res.Ping.Handoffs)
	}
	for i, h := range res.Ping.PerHandoff {
		if !h.OK || h.GapUS <= 0 || h.TotalUS <= 0 {
			t.Errorf("ping-pong hand-off %d: ok %v, gap %d µs, server total %d µs; want ok and both > 0", i, h.OK, h.GapUS, h.TotalUS)
		}
		if h.Connections != 1 {
			t.Errorf("ping-pong hand-off %d moved %d connections, want the 1", i, h.Connections)
		}
	}
	if res.Ping.Pings == 0 || res.Ping.Error != "" {
		t.Errorf("ping-pong: %d pings, error %q", res.Ping.Pings, res.Ping.Error)
	}
	if s := res.Stream; s.Bytes == 0 || s.Errors != 0 || s.Handoffs != 2 {
		t.Errorf("stream: %d bytes, %d errors (%s), %d hand-offs; want bytes, no error, 2 hand-offs", s.Bytes, s.Errors, s.Error, s.Handoffs)
	}
	if len(res.Bulk) != 2 {
		t.Fatalf("%d bulk results, want 2", len(res.Bulk))
	}
	for _, b := range res.Bulk {
		if b.Skipped != "" || b.Alive != b.Conns || len(b.Handoffs) != 2 {
			t.Errorf("bulk %d: skipped %q, %d alive, %d hand-offs", b.Conns, b.Skipped, b.Alive, len(b.Handoffs))
		}
		for _, h := range b.Handoffs {
			if !h.OK || h.Connections != b.Conns || h.TotalUS <= 0 || len(h.Phases) == 0 {
				t.Errorf("bulk %d: hand-off %+v", b.Conns, h)
			}
		}
	}
	bl := res.Baseline
	if bl.Failovers != 3 || len(bl.PerFailover) != 3 {
		t.Fatalf("baseline: %d fail-overs, want 3 (%s)", bl.Failovers, bl.Error)
	}
	// Every fail-over is measured from its own start: a client broken
	// twice by one fail-over must not lend the next a negative outage.
	for i, f := range bl.PerFailover {
		if f.GapUS <= 0 || f.OutageUS <= 0 || f.Cause == "" || f.Connections < 1 || f.Dials < 1 {
			t.Errorf("baseline fail-over %d: %+v; want a gap, an outage after its start, a cause, a lost connection and a dial", i+1, f)
		}
	}
	var table, svg bytes.Buffer
	res.WriteTable(&table)
	if !strings.Contains(table.String(), "Baseline without sockshift") {
		t.Errorf("table:\n%s", table.String())
	}
	if err := res.WriteSVG(&svg); err != nil || !strings.Contains(svg.String(), `class="handoff"`) {
		t.Errorf("svg: %v", err)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	ctx := context.Background()
	if _, err := bench.Run(ctx, bench.Config{Bulk: []int{10, 0}}, nil); err == nil || !strings.Contains(err.Error(), "bulk") {
		t.Errorf("bulk 0: %v", err)
	}
	if _, err := bench.Run(ctx, bench.Config{Prefix: "no/slash-and-far-too-long"}, nil); err == nil {
		t.Error("a bad prefix was accepted")
	}
}
