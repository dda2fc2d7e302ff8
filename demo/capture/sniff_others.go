//go:build !linux

package capture

import (
	"errors"
	"fmt"
	"runtime"
)

// Sniff is not implemented outside Linux: it needs AF_PACKET sockets and
// network namespaces.
func Sniff(ns, iface string, ring *Ring, cfg *SniffConfig) (*Sniffer, error) {
	return nil, fmt.Errorf("capture: sniffing on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
