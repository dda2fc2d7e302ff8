package fdtable

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fdSize reads the size of this process's descriptor table (FDSize in
// /proc/self/status).
func fdSize(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "FDSize:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("/proc/self/status has no FDSize")
	return 0
}

func TestReserveGrowsTheTable(t *testing.T) {
	// The runtime opens its poller's descriptors on first use: before we
	// count, not between the counts.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	next, err := Next()
	if err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	n := 3 * fdSize(t) // past the table, whatever it is now
	if uint64(next+n) >= lim.Cur {
		t.Skipf("RLIMIT_NOFILE %d is too low for this test", lim.Cur)
	}
	// An open descriptor stays as it is.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()

	if err := Reserve(n); err != nil {
		t.Fatal(err)
	}
	if got := fdSize(t); got <= next+n {
		t.Fatalf("table holds %d descriptors after Reserve(%d) from %d", got, n, next)
	}
	after, err := Next()
	if err != nil {
		t.Fatal(err)
	}
	if after != next+2 { // the pipe's two ends; the reservation left nothing open
		t.Errorf("lowest free descriptor %d, want %d", after, next+2)
	}
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := r.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("pipe after Reserve: %q, %v", b, err)
	}
}

func TestReserveStopsAtTheLimit(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(fdSize(t)) // a reservation past this would fail
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	if err := Reserve(10 * int(low.Cur)); err != nil {
		t.Fatalf("Reserve past RLIMIT_NOFILE: %v, want it capped", err)
	}
	if err := Reserve(0); err != nil {
		t.Fatal(err)
	}
}
