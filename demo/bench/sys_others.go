//go:build !linux

package bench

import (
	"fmt"
	"net"
	"runtime"
)

func errNotLinux() error { return fmt.Errorf("bench: not implemented on %s", runtime.GOOS) }

func nofile() (int, error) { return 0, errNotLinux() }

func uname() string { return runtime.GOOS + " " + runtime.GOARCH }

func retransmits(net.Conn) (uint32, error) { return 0, errNotLinux() }
