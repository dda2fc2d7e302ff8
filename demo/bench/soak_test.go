package bench_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/bench"
	"github.com/sockshift/sockshift/demo/internal/labtest"
)

// TestShortSoak is the soak's CI version: 50 hand-offs back to back with
// two verified full-speed streams, a ping-pong client and 200 idle chat
// clients. No error, every chat client alive, and the servers' open files
// back where they started, their memory bounded.
func TestShortSoak(t *testing.T) {
	exe := labtest.Binary(t)           // skips outside CI without root
	dir, err := os.MkdirTemp("", "ss") // short: control sockets live here
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var logs, progress labtest.Output
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const handoffs, chat = 50, 200
	res, err := bench.Run(ctx, bench.Config{
		Prefix: labtest.Prefix(), Exe: exe, RunDir: dir, NodeOutput: &logs,
		Soak: handoffs, Streams: 2, ChatClients: chat, Command: "TestShortSoak",
	}, &progress)
	defer func() {
		if t.Failed() {
			t.Logf("progress:\n%s\nservers:\n%s", progress.String(), logs.String())
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	res.WriteSoakTable(&table)
	t.Logf("\n%s", table.String())
	if len(res.Problems) > 0 {
		t.Errorf("problems: %q", res.Problems)
	}
	s := res.Soak
	if s == nil {
		t.Fatal("no soak result")
	}
	if s.Handoffs != handoffs || s.Failed != 0 || s.WrongCount != 0 {
		t.Errorf("%d hand-offs, %d failed, %d moved a wrong count; want %d, 0, 0", s.Handoffs, s.Failed, s.WrongCount, handoffs)
	}
	if s.ChatAlive != chat {
		t.Errorf("%d of %d chat clients alive", s.ChatAlive, chat)
	}
	if s.StreamBytes == 0 || s.Pings == 0 {
		t.Errorf("streams verified %d bytes, ping-pong %d round trips: the load did not run", s.StreamBytes, s.Pings)
	}
	start, ok1 := s.Sample("start")
	end, ok2 := s.Sample("end")
	before, ok3 := s.Sample("before")
	after, ok4 := s.Sample("after")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		t.Fatalf("samples missing: %+v", s.Samples)
	}
	fds := func(p bench.ProcSample) (n int) {
		for _, s := range p.Nodes {
			n += s.FDs
		}
		return n
	}
	// Every client connection is an open file on the holder: a hand-off
	// that leaked one per connection would show hundreds. (Summed over both
	// servers: which one holds the clients depends on the count's parity.)
	if d := fds(end) - fds(start); d < -5 || d > 5 {
		t.Errorf("%d open files on the servers at the start, %d at the end", fds(start), fds(end))
	}
	if d := fds(after) - fds(before); d < -5 || d > 5 {
		t.Errorf("%d open files on the servers before the clients, %d after they left", fds(before), fds(after))
	}
	// RSS is a coarse leak detector: a full-speed stream moves megabytes
	// of queues per hand-off, and Go hands freed memory back to the system
	// only minutes later, so the bound is the order of what a leak of a
	// few megabytes per hand-off would reach in 50 hand-offs.
	for i := range start.Nodes {
		if st, en := start.Nodes[i], end.Nodes[i]; en.RSSKiB > st.RSSKiB+384<<10 {
			t.Errorf("server %s: RSS grew from %d KiB to %d KiB", st.Role, st.RSSKiB, en.RSSKiB)
		}
	}
}
