package client

import (
	"context"
	"io"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/handoff/nstest"
)

// A class watches the ping client's retransmissions while a hand-off holds
// its connection frozen: they must show in the figures printed every
// second, while it waits, not only when the run ends. The server's answers
// are dropped for a while (in a namespace of the test's own), then let
// through again.
func TestRetransmitsShowWhileStalled(t *testing.T) {
	nstest.NeedTool(t, "nft", "nftables")
	ns := nstest.NewNS(t, "rt")
	var ln net.Listener
	if err := nstest.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp4", "127.0.0.1:7007")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()

	var mu sync.Mutex
	var seen []Stats
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var final Stats
	go func() {
		var err error
		final, err = Run(ctx, Config{
			Addr: "127.0.0.1:7007", Mode: Ping, Interval: 10 * time.Millisecond, Stall: time.Minute,
			Every: func(st Stats) { mu.Lock(); seen = append(seen, st); mu.Unlock() },
			Dial: func(ctx context.Context, addr string) (c net.Conn, err error) {
				err = nstest.Do(ns, func() (err error) {
					var d net.Dialer
					c, err = d.DialContext(ctx, "tcp4", addr)
					return err
				})
				return c, err
			},
		})
		done <- err
	}()
	last := func() Stats {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return Stats{}
		}
		return seen[len(seen)-1]
	}
	waitFor := func(what string, cond func(Stats) bool) Stats {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if st := last(); cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last figures %+v", what, last())
			}
		}
	}
	before := waitFor("pings before the stall", func(st Stats) bool { return st.Pings > 10 })
	if before.Retransmits != 0 {
		t.Fatalf("retransmissions on a quiet loopback: %+v", before)
	}

	nstest.Exec(t, ns, "nft", "add", "table", "inet", "stall")
	t.Cleanup(func() { exec.Command("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "stall").Run() })
	nstest.Exec(t, ns, "nft", "add", "chain", "inet", "stall", "out", "{ type filter hook output priority 0; }")
	nstest.Exec(t, ns, "nft", "add", "rule", "inet", "stall", "out", "tcp", "sport", "7007", "drop")
	stalled := waitFor("retransmissions shown while stalled", func(st Stats) bool { return st.Retransmits > 0 })
	nstest.Exec(t, ns, "nft", "delete", "table", "inet", "stall")
	waitFor("pings after the stall", func(st Stats) bool { return st.Pings > stalled.Pings+10 })

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if final.Errors != 0 || final.Retransmits < stalled.Retransmits {
		t.Errorf("at the end: %+v; want no error and at least the %d retransmissions seen while stalled", final, stalled.Retransmits)
	}
}
