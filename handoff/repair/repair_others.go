//go:build !linux

package repair

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
)

var errNotImplemented = fmt.Errorf("TCP repair on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func freeze(syscall.RawConn, netip.AddrPort) (SocketState, error) { return Normal, errNotImplemented }
func dump(syscall.RawConn, netip.AddrPort, netip.AddrPort, bool) (*State, int, error) {
	return nil, 0, errNotImplemented
}
func thaw(syscall.RawConn) (SocketState, error)          { return Unknown, errNotImplemented }
func restore(*State, uint32, bool) (*net.TCPConn, error) { return nil, errNotImplemented }
func activate(*net.TCPConn, bool, bool, bool) error      { return errNotImplemented }
