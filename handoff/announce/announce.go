package announce

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// An Announcer sends gratuitous ARP on one interface. Its methods may be
// called from any goroutine.
type Announcer struct {
	ifname string
	mac    net.HardwareAddr
	conn   *packet.Conn
}

// HardwareAddr is the MAC the Announcer claims the address with: the
// interface's own.
func (a *Announcer) HardwareAddr() net.HardwareAddr {
	return append(net.HardwareAddr(nil), a.mac...)
}

// Announce broadcasts gratuitous ARP for addr: an ARP request, then an ARP
// reply, both with sender IP = target IP = addr and sender MAC = ours, so
// receivers that heed either kind update their caches.
//
// Equivalent to: arping -U -c1 -I IF A; arping -A -c1 -I IF A
func (a *Announcer) Announce(addr netip.Addr) error {
	frames, err := gratuitous(a.mac, addr)
	if err != nil {
		return fmt.Errorf("announce: %v on %s: %w", addr, a.ifname, err)
	}
	for _, f := range frames {
		if _, err := a.conn.WriteTo(f, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			return fmt.Errorf("announce: %v on %s: %w", addr, a.ifname, err)
		}
	}
	return nil
}

// Close closes the packet socket. It takes milliseconds; do it off the
// hand-off's critical path.
func (a *Announcer) Close() error {
	if err := a.conn.Close(); err != nil {
		return fmt.Errorf("announce: close %s: %w", a.ifname, err)
	}
	return nil
}

// gratuitous returns the two Ethernet frames Announce sends for addr from mac:
// a broadcast gratuitous ARP request (target MAC zero, as in an RFC 5227
// announcement) and a broadcast gratuitous ARP reply (target MAC = mac, which
// Linux requires to treat a reply as gratuitous).
func gratuitous(mac net.HardwareAddr, addr netip.Addr) ([2][]byte, error) {
	var out [2][]byte
	a := addr.Unmap()
	if !a.Is4() {
		return out, fmt.Errorf("%v is not an IPv4 address (IPv6 uses neighbour advertisements)", addr)
	}
	if len(mac) != 6 {
		return out, fmt.Errorf("hardware address %q is not an Ethernet MAC", mac)
	}
	targets := [2]struct {
		op arp.Operation
		hw net.HardwareAddr
	}{
		{arp.OperationRequest, make(net.HardwareAddr, 6)},
		{arp.OperationReply, mac},
	}
	for i, tg := range targets {
		p, err := arp.NewPacket(tg.op, mac, a, tg.hw, a)
		if err != nil {
			return out, err
		}
		pb, err := p.MarshalBinary()
		if err != nil {
			return out, err
		}
		f := &ethernet.Frame{
			Destination: ethernet.Broadcast,
			Source:      mac,
			EtherType:   ethernet.EtherTypeARP,
			Payload:     pb,
		}
		if out[i], err = f.MarshalBinary(); err != nil {
			return out, err
		}
	}
	return out, nil
}
