//go:build !linux

package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

// Add is not implemented outside Linux.
func Add(ifname string, addr netip.Addr) error { return notImplemented("add", ifname, addr) }

// Remove is not implemented outside Linux.
func Remove(ifname string, addr netip.Addr) error { return notImplemented("remove", ifname, addr) }

// Held is not implemented outside Linux.
func Held(ifname string, addr netip.Addr) (bool, error) {
	return false, notImplemented("check", ifname, addr)
}

func notImplemented(op, ifname string, addr netip.Addr) error {
	return fmt.Errorf("vip: %s %v on %s on %s: %w", op, addr, ifname, runtime.GOOS, errors.ErrUnsupported)
}

// Link is not implemented outside Linux.
type Link struct{}

// Open is not implemented outside Linux.
func Open(ifname string) (*Link, error) {
	return nil, fmt.Errorf("vip: open %s on %s: %w", ifname, runtime.GOOS, errors.ErrUnsupported)
}

func (l *Link) Add(addr netip.Addr) error          { return notImplemented("add", "", addr) }
func (l *Link) Remove(addr netip.Addr) error       { return notImplemented("remove", "", addr) }
func (l *Link) Held(addr netip.Addr) (bool, error) { return false, notImplemented("check", "", addr) }
func (l *Link) Close() error                       { return nil }
