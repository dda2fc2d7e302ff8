package childtest

import (
	"os"
	"testing"
)

func TestRunReadsTheChildsNumber(t *testing.T) {
	if InChild(t) {
		t.Logf("pid %d", os.Getpid())
		return
	}
	if pid := Run(t, "pid"); pid == os.Getpid() || pid <= 0 {
		t.Fatalf("the child reported pid %d; this process is %d", pid, os.Getpid())
	}
}
