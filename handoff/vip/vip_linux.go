package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link changes one interface's addresses through a netlink socket kept
// open, on the interface looked up once: a hand-off changes addresses
// while its clients wait, and a new socket and a link lookup for each
// change cost more than the change itself. Its methods may be called from
// any goroutine; it acts in the network namespace it was opened in.
type Link struct {
	ifname string
	h      *netlink.Handle

	mu   sync.Mutex
	link netlink.Link
}

// Open opens the interface's addresses for changes.
func Open(ifname string) (*Link, error) {
	if ifname == "" {
		return nil, errors.New("vip: open: no interface given")
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("vip: open %s: %w", ifname, err)
	}
	l := &Link{ifname: ifname, h: h}
	if _, err := l.resolve(false); err != nil {
		h.Close()
		return nil, fmt.Errorf("vip: open: %w", err)
	}
	return l, nil
}

// Close closes the netlink socket; the addresses stay as they are.
func (l *Link) Close() error {
	l.h.Close()
	return nil
}

// resolve returns the interface, looked up again if again (it may have
// been replaced: a new index).
func (l *Link) resolve(again bool) (netlink.Link, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.link != nil && !again {
		return l.link, nil
	}
	link, err := l.h.LinkByName(l.ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", l.ifname, err)
	}
	l.link = link
	return link, nil
}

// do runs op on the interface, once more on a fresh lookup if the
// interface it knew is gone.
func (l *Link) do(op func(netlink.Link) error) error {
	link, err := l.resolve(false)
	if err != nil {
		return err
	}
	if err = op(link); errors.Is(err, unix.ENODEV) {
		if link, err = l.resolve(true); err == nil {
			err = op(link)
		}
	}
	return err
}

// Add assigns addr/32 to the interface; an address already present is not
// an error.
//
// Equivalent to: ip addr add A/32 dev IF
func (l *Link) Add(addr netip.Addr) error {
	a, err := check("add", l.ifname, addr)
	if err != nil {
		return err
	}
	err = l.do(func(link netlink.Link) error { return l.h.AddrAdd(link, hostAddr(a)) })
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("vip: add %v/32 to %s: %w", a, l.ifname, err)
	}
	return nil
}

// Remove deletes addr/32 from the interface; an address already absent is
// not an error. Other addresses of the interface are left alone, including
// addr itself if it was assigned with another prefix length.
//
// Equivalent to: ip addr del A/32 dev IF
func (l *Link) Remove(addr netip.Addr) error {
	a, err := check("remove", l.ifname, addr)
	if err != nil {
		return err
	}
	err = l.do(func(link netlink.Link) error { return l.h.AddrDel(link, hostAddr(a)) })
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("vip: remove %v/32 from %s: %w", a, l.ifname, err)
	}
	return nil
}

// Held reports whether the interface has addr, with any prefix length.
//
// Equivalent to: ip -4 addr show dev IF to A
func (l *Link) Held(addr netip.Addr) (bool, error) {
	a, err := check("check", l.ifname, addr)
	if err != nil {
		return false, err
	}
	var addrs []netlink.Addr
	err = l.do(func(link netlink.Link) error {
		var err error
		// A dump interrupted by a concurrent change may be incomplete; the
		// next one is consistent unless the addresses keep changing.
		for range 3 {
			addrs, err = l.h.AddrList(link, netlink.FAMILY_V4)
			if !errors.Is(err, netlink.ErrDumpInterrupted) {
				break
			}
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("vip: check %v on %s: %w", a, l.ifname, err)
	}
	for _, x := range addrs {
		if got, ok := netip.AddrFromSlice(x.IP); ok && got.Unmap() == a {
			return true, nil
		}
	}
	return false, nil
}

// Add assigns addr/32 to the interface (see Link.Add), with a netlink
// socket of its own.
func Add(ifname string, addr netip.Addr) error {
	return once("add", ifname, addr, func(l *Link) error { return l.Add(addr) })
}

// Remove deletes addr/32 from the interface (see Link.Remove), with a
// netlink socket of its own.
func Remove(ifname string, addr netip.Addr) error {
	return once("remove", ifname, addr, func(l *Link) error { return l.Remove(addr) })
}

// Held reports whether the interface has addr (see Link.Held), with a
// netlink socket of its own.
func Held(ifname string, addr netip.Addr) (held bool, err error) {
	err = once("check", ifname, addr, func(l *Link) (err error) { held, err = l.Held(addr); return err })
	return held, err
}

func once(op, ifname string, addr netip.Addr, fn func(*Link) error) error {
	if _, err := check(op, ifname, addr); err != nil {
		return err
	}
	l, err := Open(ifname)
	if err != nil {
		return fmt.Errorf("vip: %s %v: %w", op, addr, errors.Unwrap(err))
	}
	defer l.Close()
	return fn(l)
}

func hostAddr(a netip.Addr) *netlink.Addr {
	b := a.As4()
	return &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(b[:]), Mask: net.CIDRMask(32, 32)}}
}
