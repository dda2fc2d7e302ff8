package childtest

import (
	"os"
	"testing"
)

// Goroutines left waiting hold their first stacks (2 KB each; the
// runtime's stack cache may have some ready, so half counts).
func TestStackGrowthCountsWaitingGoroutines(t *testing.T) {
	const n = 100
	release := make(chan struct{})
	defer close(release)
	got := StackGrowth(func() {
		started := make(chan struct{}, n)
		for range n {
			go func() { started <- struct{}{}; <-release }()
		}
		for range n {
			<-started
		}
	})
	if got < n<<10 {
		t.Fatalf("%d bytes of stack for %d waiting goroutines, want at least %d", got, n, n<<10)
	}
}

// The child's parent is this process: the measurement ran in a child.
func TestMeasureRunsInAChild(t *testing.T) {
	got := Measure(t, os.Getppid)
	if os.Getenv(envName) == "" && got != os.Getpid() {
		t.Fatalf("measured in a process whose parent is %d; this process is %d", got, os.Getpid())
	}
}
