// Package childtest runs a test again in a fresh process of the same test
// binary, for measurements that the Go runtime's history in a long test
// binary would skew: the runtime sizes a new goroutine's first stack from
// the stacks it has seen, so a stack measured after other tests is not the
// stack a fresh server would have.
package childtest

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// envName marks the child process, with the test it runs.
const envName = "SOCKSHIFT_CHILD_TEST"

// InChild reports whether this process is the child running t.
func InChild(t testing.TB) bool { return os.Getenv(envName) == t.Name() }

// Run runs t again in a child process, where InChild is true, and returns
// the number the child printed after key (with t.Logf("%s %d", key, n)).
func Run(t testing.TB, key string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envName+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a child process: %v\n%s", t.Name(), err, out)
	}
	_, rest, ok := strings.Cut(string(out), key+" ")
	if !ok {
		t.Fatalf("the child printed no %q:\n%s", key, out)
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		t.Fatalf("the child printed no number after %q:\n%s", key, out)
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatalf("the child's %q: %v\n%s", key, err, out)
	}
	return n
}
