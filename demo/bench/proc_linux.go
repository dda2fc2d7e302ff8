package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// findProcess finds the `sockshift node` process whose command line names
// the control socket (unique to one server of one lab).
func findProcess(control string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
		node, ours := false, false
		for i, a := range args {
			if string(a) == "node" && i > 0 {
				node = true // the subcommand; the binary may have any name
			}
			if string(a) == control {
				ours = true
			}
		}
		if node && ours {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%w with control socket %s", errNoProcess, control)
}

// procStats reads a process's resident memory and counts its open files.
func procStats(pid int) (rssKiB int64, fds int, err error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	rssKiB = -1
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKiB, err = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("bench: %s: VmRSS %q: %w", dir, v, err)
			}
		}
	}
	if rssKiB < 0 {
		return 0, 0, fmt.Errorf("bench: %s/status has no VmRSS", dir)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "fd"))
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	return rssKiB, len(ents), nil
}
