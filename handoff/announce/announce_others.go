//go:build !linux

package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"
)

// New is not implemented outside Linux: it needs an AF_PACKET socket.
func New(ifname string) (*Announcer, error) {
	return nil, fmt.Errorf("announce: open %s on %s: %w", ifname, runtime.GOOS, errors.ErrUnsupported)
}

// Probe is not implemented outside Linux: it needs an AF_PACKET socket.
func Probe(ifname string, addr netip.Addr, wait time.Duration) (net.HardwareAddr, error) {
	return nil, fmt.Errorf("announce: probe %v on %s on %s: %w", addr, ifname, runtime.GOOS, errors.ErrUnsupported)
}
