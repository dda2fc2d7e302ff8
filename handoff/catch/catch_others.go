//go:build !linux

package catch

import (
	"fmt"
	"net/netip"
	"runtime"
)

// Arm is not implemented outside Linux: it needs an AF_PACKET socket.
func Arm(ifname string, vip netip.Addr, cfg *Config) (*Catcher, error) {
	return nil, fmt.Errorf("catch: arm %v on %s: not implemented on %s", vip, ifname, runtime.GOOS)
}
