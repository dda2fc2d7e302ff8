package vip

import (
	"fmt"
	"net/netip"
)

// check returns addr as a plain IPv4 address, or an error naming the
// operation, the interface and the address.
func check(op, ifname string, addr netip.Addr) (netip.Addr, error) {
	a := addr.Unmap() // ::ffff:a.b.c.d is an IPv4 address written the IPv6 way
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("vip: %s %v on %s: not an IPv4 address", op, addr, ifname)
	}
	if ifname == "" {
		return netip.Addr{}, fmt.Errorf("vip: %s %v: no interface given", op, addr)
	}
	return a, nil
}
