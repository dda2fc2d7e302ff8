//go:build unix

package chat

import (
	"errors"

	"golang.org/x/sys/unix"
)

// peerGone reports whether c's client has closed or reset its end though
// c's reader has not seen it yet: a peek at the socket finds the end, and
// nothing before it. It never blocks (Control does not wait for the
// reader, which may sit in Read).
func (c *conn) peerGone() bool {
	if c.c == nil {
		return false
	}
	rc, err := c.c.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = (err == nil && n == 0) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
	})
	return gone
}
