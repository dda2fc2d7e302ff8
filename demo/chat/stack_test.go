//go:build !race

// The race detector grows every stack; this measures plain builds.

package chat_test

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/childtest"
)

// TestWaitingConnectionsKeepSmallStacks checks that a connection waiting
// for its client costs its two goroutines' first stacks (2 KB each), not
// grown ones: a target resuming thousands of chat clients otherwise grows
// (copies) thousands of stacks while they wait.
func TestWaitingConnectionsKeepSmallStacks(t *testing.T) {
	per := childtest.Measure(t, func() int { return waitingStackPerConn(t) })
	t.Logf("%d bytes of stack per waiting connection", per)
	if per > 6<<10 {
		t.Errorf("%d bytes of stack per waiting connection, want two first stacks (4 KB): a loop outgrew its stack", per)
	}
}

func waitingStackPerConn(t *testing.T) int {
	const n = 300
	l := serve(t, nil)
	return childtest.StackGrowth(func() {
		for range n {
			c, err := net.Dial("tcp4", l.addr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
		}
		// A client that sent nothing yet: its reader sits in Read.
		for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() < 2*n; {
			if time.Now().After(deadline) {
				t.Fatalf("%d goroutines for %d connections", runtime.NumGoroutine(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
	}) / n
}
