//go:build !linux

package neigh

import (
	"fmt"
	"net/netip"
	"runtime"
)

// Lookup is not implemented on this system: the neighbour table is read
// through Linux's netlink.
func Lookup(namespace string, addr netip.Addr, dev string) ([]Entry, error) {
	return nil, fmt.Errorf("neigh: not implemented on %s", runtime.GOOS)
}
