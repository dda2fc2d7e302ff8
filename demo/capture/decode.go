package capture

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/sockshift/sockshift/handoff/tcphdr"
)

// Packet is what the diagram needs of a frame: its Ethernet addresses and
// its ARP or TCP/IPv4 header. Exactly one of ARP and TCP is set.
type Packet struct {
	Time     time.Time
	Src, Dst net.HardwareAddr
	ARP      *ARP
	TCP      *TCP
}

// ARP is an ARP packet for IPv4 over Ethernet.
type ARP struct {
	Op                   uint16 // 1 request, 2 reply
	SenderMAC, TargetMAC net.HardwareAddr
	SenderIP, TargetIP   netip.Addr
}

// Gratuitous reports whether the packet announces the sender's own
// address (sender and target address equal), as a host taking over an
// address does.
func (a *ARP) Gratuitous() bool { return a.SenderIP == a.TargetIP }

// TCP flags.
const (
	FIN = tcphdr.FIN
	SYN = tcphdr.SYN
	RST = tcphdr.RST
	PSH = tcphdr.PSH
	ACK = tcphdr.ACK
)

// TCP is a TCP segment's header (tcphdr.Header, which this converts from).
type TCP struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
	Payload  int // bytes of data, from the IP header's length
}

// FlagString is the flags as tcpdump shows them, e.g. "P." or "R".
func (t *TCP) FlagString() string {
	s := ""
	for _, f := range []struct {
		bit uint8
		c   string
	}{{SYN, "S"}, {FIN, "F"}, {RST, "R"}, {PSH, "P"}} {
		if t.Flags&f.bit != 0 {
			s += f.c
		}
	}
	if t.Flags&ACK != 0 {
		s += "."
	}
	return s
}

const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
)

var (
	errShort = errors.New("capture: frame too short")
	errOther = errors.New("capture: neither ARP nor TCP/IPv4")
)

// Decode reads the Ethernet, ARP or IPv4 and TCP headers of f. Frames that
// are neither ARP nor TCP/IPv4 give an error; so do truncated ones.
func Decode(f Frame) (Packet, error) {
	b := f.Data
	if len(b) < 14 {
		return Packet{}, errShort
	}
	p := Packet{Time: f.Time, Dst: net.HardwareAddr(b[0:6]), Src: net.HardwareAddr(b[6:12])}
	typ := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	switch typ {
	case etherTypeARP:
		// hardware Ethernet (1), protocol IPv4, sizes 6 and 4.
		if len(b) < 28 {
			return Packet{}, errShort
		}
		if binary.BigEndian.Uint16(b[0:2]) != 1 || binary.BigEndian.Uint16(b[2:4]) != etherTypeIPv4 || b[4] != 6 || b[5] != 4 {
			return Packet{}, errOther
		}
		p.ARP = &ARP{
			Op:        binary.BigEndian.Uint16(b[6:8]),
			SenderMAC: net.HardwareAddr(b[8:14]),
			SenderIP:  netip.AddrFrom4([4]byte(b[14:18])),
			TargetMAC: net.HardwareAddr(b[18:24]),
			TargetIP:  netip.AddrFrom4([4]byte(b[24:28])),
		}
		return p, nil
	case etherTypeIPv4:
		h, err := tcphdr.Parse(b)
		switch {
		case errors.Is(err, tcphdr.ErrShort):
			return Packet{}, errShort
		case err != nil:
			return Packet{}, errOther
		}
		tcp := TCP(h)
		p.TCP = &tcp
		return p, nil
	}
	return Packet{}, errOther
}
