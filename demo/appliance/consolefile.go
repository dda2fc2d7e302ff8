package appliance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The running demo writes its console's address where `sockshift handoff`
// (run without sudo, as the guides write it) finds it: beside the lab's
// run directory, which holds the key and stays root's alone.
const runRoot = "/run/sockshift"

// ConsoleFile is where the demo of the lab prefix writes its console's
// address.
func ConsoleFile(prefix string) string {
	return filepath.Join(runRoot, prefix+".console")
}

// writeConsoleFile writes addr for `sockshift handoff`, and returns what
// removes it again.
func writeConsoleFile(prefix, addr string) (func(), error) {
	if err := os.MkdirAll(runRoot, 0o755); err != nil {
		return nil, fmt.Errorf("demo: console address file: %w", err)
	}
	// MkdirAll keeps the mode of a directory a lab made earlier (0700):
	// others must be able to reach the file, never the key below.
	if err := os.Chmod(runRoot, 0o755); err != nil {
		return nil, fmt.Errorf("demo: console address file: %w", err)
	}
	path := ConsoleFile(prefix)
	if err := os.WriteFile(path, []byte(addr+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("demo: console address file: %w", err)
	}
	return func() { os.Remove(path) }, nil
}

// ConsoleAddr is the console of the running demo of the lab prefix, as it
// wrote it down; "" when none runs.
func ConsoleAddr(prefix string) string {
	b, err := os.ReadFile(ConsoleFile(prefix))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
