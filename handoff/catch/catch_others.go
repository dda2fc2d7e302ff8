//go:build !linux

package catch

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

// Arm is not implemented outside Linux: it needs an AF_PACKET socket.
func Arm(ifname string, vip netip.Addr, cfg *Config) (*Catcher, error) {
	return nil, fmt.Errorf("catch: arm %v on %s on %s: %w", vip, ifname, runtime.GOOS, errors.ErrUnsupported)
}
