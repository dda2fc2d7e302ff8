package handoff

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

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
	// Probe asks the segment who has addr: the MAC that answered, or nil.
	Probe(addr netip.Addr) (net.HardwareAddr, error)
	Catch(addr netip.Addr) (catcher, error)
	Close() error
}

// catcher is a catch.Catcher as a hand-off uses it.
type catcher interface {
	Mark()
	DropEarly(needed func(ip []byte) bool)
	Released()
	Only(owns func(ip []byte, at catch.Stage) bool)
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

	mu  sync.Mutex
	ann *announce.Announcer
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

func (l *linkNet) HardwareAddr() net.HardwareAddr  { return l.announcer().HardwareAddr() }
func (l *linkNet) Add(a netip.Addr) error          { return l.addrs.Add(a) }
func (l *linkNet) Remove(a netip.Addr) error       { return l.addrs.Remove(a) }
func (l *linkNet) Held(a netip.Addr) (bool, error) { return l.addrs.Held(a) }
func (l *linkNet) Probe(a netip.Addr) (net.HardwareAddr, error) {
	return announce.Probe(l.ifname, a, probeWait)
}

// probeWait is how long a probe waits for an ARP answer: on a LAN one
// comes within a millisecond.
const probeWait = 100 * time.Millisecond

func (l *linkNet) Close() error { l.addrs.Close(); return l.announcer().Close() }

func (l *linkNet) announcer() *announce.Announcer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ann
}

// Announce sends gratuitous ARP. A packet socket keeps the error of an
// interface that went down (ENETDOWN) and is bound to the index of one
// that was replaced: on a failure the announce goes out once more on a
// fresh socket, which then replaces the old one.
func (l *linkNet) Announce(a netip.Addr) error {
	old := l.announcer()
	err := old.Announce(a)
	if err == nil {
		return nil
	}
	fresh, ferr := announce.New(l.ifname)
	if ferr != nil {
		return errors.Join(err, ferr)
	}
	if rerr := fresh.Announce(a); rerr != nil {
		fresh.Close()
		return errors.Join(err, rerr)
	}
	l.mu.Lock()
	l.ann = fresh
	l.mu.Unlock()
	go old.Close() // slow (see announce.Close), and off the switch
	return nil
}
func (l *linkNet) Catch(a netip.Addr) (catcher, error) { return catch.Arm(l.ifname, a, nil) }
