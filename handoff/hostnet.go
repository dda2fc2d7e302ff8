package handoff

import (
	"net"
	"net/netip"

	"github.com/sockshift/sockshift/handoff/announce"
	"github.com/sockshift/sockshift/handoff/catch"
	"github.com/sockshift/sockshift/handoff/vip"
)

// hostNet is what a node does to its host's network: the service
// addresses (package vip), their announcement (announce) and catching the
// clients' frames during the switch (catch). It is the seam that lets the
// protocol and its rollbacks be tested without root (see fakeNet).
type hostNet interface {
	HardwareAddr() net.HardwareAddr
	Add(addr netip.Addr) error    // ip addr add ADDR/32 dev IF
	Remove(addr netip.Addr) error // ip addr del ADDR/32 dev IF, if there
	Held(addr netip.Addr) (bool, error)
	Announce(addr netip.Addr) error // gratuitous ARP
	Catch(addr netip.Addr) (catcher, error)
	Close() error
}

// catcher is a catch.Catcher as a hand-off uses it.
type catcher interface {
	Mark()
	DropEarly(needed func(ip []byte) bool)
	Forward(to net.HardwareAddr) (catch.Stats, error)
	Stop()
}

var (
	_ hostNet = (*linkNet)(nil)
	_ catcher = (*catch.Catcher)(nil)
)

// linkNet is the real hostNet: one interface of this host.
type linkNet struct {
	ifname string
	addrs  *vip.Link
	ann    *announce.Announcer
}

func openLinkNet(ifname string) (*linkNet, error) {
	ann, err := announce.New(ifname)
	if err != nil {
		return nil, err
	}
	addrs, err := vip.Open(ifname)
	if err != nil {
		ann.Close()
		return nil, err
	}
	return &linkNet{ifname: ifname, addrs: addrs, ann: ann}, nil
}

func (l *linkNet) HardwareAddr() net.HardwareAddr      { return l.ann.HardwareAddr() }
func (l *linkNet) Add(a netip.Addr) error              { return l.addrs.Add(a) }
func (l *linkNet) Remove(a netip.Addr) error           { return l.addrs.Remove(a) }
func (l *linkNet) Held(a netip.Addr) (bool, error)     { return l.addrs.Held(a) }
func (l *linkNet) Announce(a netip.Addr) error         { return l.ann.Announce(a) }
func (l *linkNet) Close() error                        { l.addrs.Close(); return l.ann.Close() }
func (l *linkNet) Catch(a netip.Addr) (catcher, error) { return catch.Arm(l.ifname, a, nil) }
