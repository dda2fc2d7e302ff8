//go:build !race

// The race detector grows every stack; this measures plain builds.

package echo

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

const stackChildEnv = "SOCKSHIFT_ECHO_STACK_CHILD"

// TestIdleConnectionsKeepSmallStacks checks that a connection waiting for
// its client costs one goroutine's first stack (2 KB), not a grown one: a
// target resuming ten thousand connections otherwise grows (copies) ten
// thousand stacks while the clients wait, and holds 20 MB more. It
// measures in a fresh process: the runtime sizes new stacks from the ones
// it has seen, so earlier tests would skew it.
func TestIdleConnectionsKeepSmallStacks(t *testing.T) {
	if os.Getenv(stackChildEnv) != "" {
		measureIdleStacks(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestIdleConnectionsKeepSmallStacks$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), stackChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("measuring in a child process: %v\n%s", err, out)
	}
	_, rest, ok := strings.Cut(string(out), "stack per idle connection: ")
	if !ok {
		t.Fatalf("the child reported nothing:\n%s", out)
	}
	per, err := strconv.Atoi(strings.Fields(rest)[0])
	if err != nil {
		t.Fatalf("the child's report: %v\n%s", err, out)
	}
	t.Logf("%d bytes of stack per idle connection", per)
	if per > 3<<10 {
		t.Errorf("%d bytes of stack per idle connection, want the first stack (2 KB): the read loop outgrew it", per)
	}
}

func measureIdleStacks(t *testing.T) {
	const n = 500
	s, addr := listen(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
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
	runtime.ReadMemStats(&after)
	t.Logf("stack per idle connection: %d bytes", (after.StackInuse-before.StackInuse)/n)
}
