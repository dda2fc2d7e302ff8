package handoff

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// acceptQueued takes every connection waiting in the listener's queue,
// without waiting for more.
func acceptQueued(ln *net.TCPListener) ([]*net.TCPConn, error) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("listener %v: %w", ln.Addr(), err)
	}
	var fds []int
	var aerr error
	err = rc.Control(func(fd uintptr) {
		for {
			nfd, _, err := unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
			switch {
			case err == nil:
				fds = append(fds, nfd)
				continue
			case errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED):
				continue
			case !errors.Is(err, unix.EAGAIN):
				aerr = os.NewSyscallError("accept4", err)
			}
			return
		}
	})
	var conns []*net.TCPConn
	for _, nfd := range fds {
		f := os.NewFile(uintptr(nfd), "accepted")
		c, ferr := net.FileConn(f) // a copy of the descriptor, as Accept sets it up
		f.Close()
		if ferr != nil {
			aerr = errors.Join(aerr, ferr)
			continue
		}
		conns = append(conns, c.(*net.TCPConn))
	}
	if err = errors.Join(err, aerr); err != nil {
		return conns, fmt.Errorf("listener %v: %w", ln.Addr(), err)
	}
	return conns, nil
}
