package childtest

import (
	"os"
	"testing"
)

// The child's parent is this process: the measurement ran in a child.
func TestMeasureRunsInAChild(t *testing.T) {
	got := Measure(t, os.Getppid)
	if os.Getenv(envName) == "" && got != os.Getpid() {
		t.Fatalf("measured in a process whose parent is %d; this process is %d", got, os.Getpid())
	}
}
