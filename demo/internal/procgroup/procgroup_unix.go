//go:build unix

package procgroup

import (
	"os"
	"os/exec"
	"syscall"
)

// Own makes cmd start in a process group of its own: a terminal's Ctrl-C
// reaches only us, and we stop what we started in order.
func Own(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// Signal signals the process group that p leads.
func Signal(p *os.Process, sig syscall.Signal) error { return syscall.Kill(-p.Pid, sig) }
