package handoff

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerGone reports, without reading anything, whether the channel's peer
// has closed or reset the connection: a target that dies after saying its
// sockets are rebuilt must not be committed to. The target sends nothing
// between Restored and our decision, so anything readable is a close, a
// reset, or a protocol error; each stops the commit.
func peerGone(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return fmt.Errorf("channel: %w", err)
	}
	var gone error
	cerr := rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case errors.Is(err, unix.EAGAIN):
			// Nothing to read: the peer is there and silent, as it should be.
		case err != nil:
			gone = fmt.Errorf("target gone before the decision: %w", err)
		case n == 0:
			gone = fmt.Errorf("target gone before the decision: %w", io.EOF)
		default:
			gone = errors.New("target sent data while waiting for the decision")
		}
	})
	if cerr != nil {
		return fmt.Errorf("channel: %w", cerr)
	}
	return gone
}
