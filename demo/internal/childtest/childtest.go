// Package childtest runs a test again in a fresh process of the same test
// binary, for measurements that the Go runtime's history in a long test
// binary would skew: the runtime sizes a new goroutine's first stack from
// the stacks it has seen, so a stack measured after other tests is not the
// stack a fresh server would have. StackGrowth is that measurement.
package childtest

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// envName marks the child process, with the test it runs.
const envName = "SOCKSHIFT_CHILD_TEST"

// key marks the child's number in its output.
const key = "childtest-measured"

// Measure returns what measure finds in a fresh process: run in the test
// binary's own process, it runs t again in a child, where it calls measure
// and prints the number, and returns the child's number.
func Measure(t testing.TB, measure func() int) int {
	t.Helper()
	if os.Getenv(envName) == t.Name() {
		n := measure()
		t.Logf("%s %d", key, n)
		return n
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), envName+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a child process: %v\n%s", t.Name(), err, out)
	}
	_, rest, ok := strings.Cut(string(out), key+" ")
	if !ok {
		t.Fatalf("the child printed no measurement:\n%s", out)
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		t.Fatalf("the child printed no number:\n%s", out)
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatalf("the child's measurement: %v\n%s", err, out)
	}
	return n
}

// StackGrowth returns the bytes of goroutine stack in use once grow has
// returned, less those in use before it ran (after a collection, so that
// stacks of goroutines already gone do not count): what the goroutines
// that grow started, and left waiting, hold.
func StackGrowth(grow func()) int {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	grow()
	runtime.ReadMemStats(&after)
	return int(after.StackInuse) - int(before.StackInuse)
}
