package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Add assigns addr/32 to the interface; an address already present is not
// an error.
//
// Equivalent to: ip addr add A/32 dev IF
func Add(ifname string, addr netip.Addr) error {
	a, err := check("add", ifname, addr)
	if err != nil {
		return err
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("vip: add %v/32 to %s: %w", a, ifname, err)
	}
	err = netlink.AddrAdd(link, hostAddr(a))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("vip: add %v/32 to %s: %w", a, ifname, err)
	}
	return nil
}

// Remove deletes addr/32 from the interface; an address already absent is
// not an error. Other addresses of the interface are left alone, including
// addr itself if it was assigned with another prefix length.
//
// Equivalent to: ip addr del A/32 dev IF
func Remove(ifname string, addr netip.Addr) error {
	a, err := check("remove", ifname, addr)
	if err != nil {
		return err
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("vip: remove %v/32 from %s: %w", a, ifname, err)
	}
	err = netlink.AddrDel(link, hostAddr(a))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("vip: remove %v/32 from %s: %w", a, ifname, err)
	}
	return nil
}

// Held reports whether the interface has addr, with any prefix length.
//
// Equivalent to: ip -4 addr show dev IF to A
func Held(ifname string, addr netip.Addr) (bool, error) {
	a, err := check("check", ifname, addr)
	if err != nil {
		return false, err
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, fmt.Errorf("vip: check %v on %s: %w", a, ifname, err)
	}
	var addrs []netlink.Addr
	// A dump interrupted by a concurrent change may be incomplete; the
	// next one is consistent unless the addresses keep changing.
	for range 3 {
		addrs, err = netlink.AddrList(link, netlink.FAMILY_V4)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return false, fmt.Errorf("vip: check %v on %s: %w", a, ifname, err)
	}
	for _, x := range addrs {
		if got, ok := netip.AddrFromSlice(x.IP); ok && got.Unmap() == a {
			return true, nil
		}
	}
	return false, nil
}

func hostAddr(a netip.Addr) *netlink.Addr {
	b := a.As4()
	return &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(b[:]), Mask: net.CIDRMask(32, 32)}}
}
