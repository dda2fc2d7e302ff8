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
