//go:build !unix

package procgroup

import (
	"os"
	"os/exec"
	"syscall"
)

// Own does nothing here: the lab runs on Linux only, and elsewhere this
// module only builds.
func Own(*exec.Cmd) {}

// Signal signals p alone.
func Signal(p *os.Process, sig syscall.Signal) error { return p.Signal(sig) }
