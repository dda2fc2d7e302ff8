package neigh

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Lookup returns the entries for addr in the named network namespace's
// neighbour table ("" is this process's own), on interface dev ("" for
// any): `ip -n NS neigh show ADDR [dev DEV]`.
func Lookup(namespace string, addr netip.Addr, dev string) ([]Entry, error) {
	h := &netlink.Handle{}
	if namespace != "" {
		ns, err := netns.GetFromName(namespace)
		if err != nil {
			return nil, fmt.Errorf("neigh: namespace %s: %w", namespace, err)
		}
		defer ns.Close()
		if h, err = netlink.NewHandleAt(ns); err != nil {
			return nil, fmt.Errorf("neigh: namespace %s: %w", namespace, err)
		}
		defer h.Close()
	}
	index := 0
	if dev != "" {
		l, err := h.LinkByName(dev)
		if err != nil {
			return nil, fmt.Errorf("neigh: %s: %w", dev, err)
		}
		index = l.Attrs().Index
	}
	list, err := h.NeighList(index, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("neigh: list: %w", err)
	}
	var out []Entry
	names := map[int]string{}
	for _, n := range list {
		ip, ok := netip.AddrFromSlice(n.IP)
		// Like ip, leave out entries of no state and those that never
		// resolve (NOARP: multicast, point-to-point).
		if !ok || ip.Unmap() != addr || n.State == 0 || n.State&nudNoARP != 0 {
			continue
		}
		name, ok := names[n.LinkIndex]
		if !ok {
			if l, err := h.LinkByIndex(n.LinkIndex); err == nil {
				name = l.Attrs().Name
			}
			names[n.LinkIndex] = name
		}
		e := Entry{Addr: addr, Dev: name, Router: n.Flags&netlink.NTF_ROUTER != 0, State: n.State}
		if len(n.HardwareAddr) > 0 {
			e.MAC = append(net.HardwareAddr{}, n.HardwareAddr...)
		}
		out = append(out, e)
	}
	return out, nil
}
