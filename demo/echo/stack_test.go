//go:build !race

// The race detector grows every stack; this measures plain builds.

package echo

import (
	"net"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/childtest"
)

// TestIdleConnectionsKeepSmallStacks checks that a connection waiting for
// its client costs one goroutine's first stack (2 KB), not a grown one: a
// target resuming ten thousand connections otherwise grows (copies) ten
// thousand stacks while the clients wait, and holds 20 MB more.
func TestIdleConnectionsKeepSmallStacks(t *testing.T) {
	per := childtest.Measure(t, func() int { return idleStackPerConn(t) })
	t.Logf("%d bytes of stack per idle connection", per)
	if per > 3<<10 {
		t.Errorf("%d bytes of stack per idle connection, want the first stack (2 KB): the read loop outgrew it", per)
	}
}

func idleStackPerConn(t *testing.T) int {
	const n = 500
	s, addr := listen(t)
	return childtest.StackGrowth(func() {
		conns := make([]net.Conn, n)
		for i := range conns {
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			conns[i] = c
		}
		for deadline := time.Now().Add(5 * time.Second); len(s.Connections()) < n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d connections served", len(s.Connections()), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		roundTrip(t, conns[n-1], "x")
		time.Sleep(50 * time.Millisecond) // every loop blocked in its read again
	}) / n
}
