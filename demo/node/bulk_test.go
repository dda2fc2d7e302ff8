package node_test

import (
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/internal/procstatus"
)

// TestBulkHandOff moves a few hundred connections at once, back and forth,
// and checks every one still echoes, with its own bytes, afterwards.
func TestBulkHandOff(t *testing.T) {
	const n = 300
	env := labtest.Start(t, nil)
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = env.DialVIP(7)
	}
	check := func(round int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg := fmt.Sprintf("conn %d round %d", i, round)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte(msg)); err != nil {
					errs <- fmt.Errorf("conn %d: %w", i, err)
					return
				}
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
					errs <- fmt.Errorf("conn %d: got %q, %v", i, got, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
	check(0)
	for i, hop := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "b"}} {
		res := env.HandOff(hop[0], hop[1])
		if !res.OK {
			t.Fatalf("hand-off %d: %s", i, res.Error)
		}
		if res.Connections != n {
			t.Errorf("hand-off %d moved %d connections, want %d", i, res.Connections, n)
		}
		t.Logf("hand-off %d: %d connections, freeze to resume %dus, phases %v", i, res.Connections, res.TotalUS, res.Phases)
		check(i + 1)
	}
}

// TestTargetMakesRoomBeforeTheFreeze checks that the target grows its
// descriptor table for the coming sockets while it prepares, before the
// freeze: grown during the restore, each doubling stalled the whole target
// for an RCU grace period, several times in a hand-off of thousands.
func TestTargetMakesRoomBeforeTheFreeze(t *testing.T) {
	env := labtest.Start(t, nil)
	before := fdSize(t, env.PID("b"))
	n := max(600, before+300) // more than the table holds now
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = env.DialVIP(7)
	}
	done := stepTo(t, env, "quiesce") // prepared; nothing frozen yet
	prepared := fdSize(t, env.PID("b"))
	res := finishSteps(t, env, done)
	if !res.OK {
		t.Fatalf("hand-off: %s", res.Error)
	}
	if prepared < n {
		t.Errorf("the target's table held %d descriptors after the prepare (%d before), want room for the %d connections coming", prepared, before, n)
	}
	for i, c := range conns {
		msg := fmt.Sprintf("conn %d", i)
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(msg))
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
			t.Fatalf("conn %d after the hand-off: got %q, %v", i, got, err)
		}
	}
}

// fdSize reads the size of a process's descriptor table.
func fdSize(t *testing.T, pid int) int {
	t.Helper()
	n, err := procstatus.Int(pid, "FDSize")
	if err != nil {
		t.Fatal(err)
	}
	return n
}
