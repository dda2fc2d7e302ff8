//go:build !linux

package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// listenAnywhere listens on addr, which must be on this host: only Linux
// can listen on an address before it comes (IP_FREEBIND).
func listenAnywhere(ctx context.Context, addr netip.AddrPort) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("listen on %v: %w", addr, err)
	}
	return ln, nil
}
