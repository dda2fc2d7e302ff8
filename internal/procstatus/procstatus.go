// Package procstatus reads fields of a Linux process's /proc/PID/status,
// for tests and checks that look at a server from outside (its descriptor
// table, its capabilities, its user).
package procstatus

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Field returns the value of one field ("FDSize", "CapEff") of a process's
// status; pid 0 means this process.
func Field(pid int, name string) (string, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("procstatus: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("procstatus: %s: %w", path, err)
	}
	return "", fmt.Errorf("procstatus: %s has no %s", path, name)
}

// Int returns a numeric field, such as FDSize (the size of the process's
// descriptor table).
func Int(pid int, name string) (int, error) {
	v, err := Field(pid, name)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("procstatus: %s %q: %w", name, v, err)
	}
	return n, nil
}
