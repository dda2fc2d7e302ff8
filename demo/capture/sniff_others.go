//go:build !linux

package capture

import (
	"fmt"
	"runtime"
)

// Sniff is not implemented outside Linux: it needs AF_PACKET sockets and
// network namespaces.
func Sniff(ns, iface string, ring *Ring, cfg *SniffConfig) (*Sniffer, error) {
	return nil, fmt.Errorf("capture: sniffing is not implemented on %s", runtime.GOOS)
}
