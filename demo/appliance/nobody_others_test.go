//go:build !unix

package appliance_test

import "os/exec"

// asNobody does nothing here: the lab, and these tests, run on Linux.
func asNobody(*exec.Cmd) {}
