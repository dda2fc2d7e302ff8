package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

// etherTypeARP is the protocol the socket is bound to; frames sent on it
// carry their own Ethernet header, so this only labels them for the kernel.
const etherTypeARP = 0x0806

// New opens a raw packet socket on the interface, in the calling thread's
// network namespace, and keeps it open until Close.
func New(ifname string) (*Announcer, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("announce: open %s: %w", ifname, err)
	}
	// The socket only sends. A filter that accepts nothing, set before the
	// bind, keeps the ARP traffic of the segment from piling up in a receive
	// queue that nobody reads.
	deaf, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return nil, fmt.Errorf("announce: open %s: %w", ifname, err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: deaf})
	if err != nil {
		return nil, fmt.Errorf("announce: open %s: %w", ifname, err)
	}
	// The socket's own address is the interface's MAC as the kernel sees it
	// in the socket's namespace.
	mac := conn.LocalAddr().(*packet.Addr).HardwareAddr
	if len(mac) != 6 || isZero(mac) {
		_ = conn.Close()
		return nil, fmt.Errorf("announce: open %s: not an Ethernet interface (hardware address %q)", ifname, mac)
	}
	return &Announcer{ifname: ifname, mac: mac, conn: conn}, nil
}

func isZero(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}

// Probe asks the segment who has addr (an ARP request from this host's
// own address on the interface) and returns the MAC that answered, or nil
// if nobody did within wait: the one way to learn that no host holds an
// address, whatever its processes did. Equivalent to: arping -c2 -w WAIT -I IF ADDR
func Probe(ifname string, addr netip.Addr, wait time.Duration) (net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("announce: probe %v on %s: %w", addr, ifname, err)
	}
	c, err := arp.Dial(ifi)
	if err != nil {
		return nil, fmt.Errorf("announce: probe %v on %s: %w", addr, ifname, err)
	}
	defer c.Close()
	// Two requests, half the wait each: one lost frame must not read as
	// "nobody has it".
	for range 2 {
		if err := c.SetDeadline(time.Now().Add(wait / 2)); err != nil {
			return nil, fmt.Errorf("announce: probe %v on %s: %w", addr, ifname, err)
		}
		mac, err := c.Resolve(addr.Unmap())
		if err == nil {
			return mac, nil
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return nil, fmt.Errorf("announce: probe %v on %s: %w", addr, ifname, err)
		}
	}
	return nil, nil
}
