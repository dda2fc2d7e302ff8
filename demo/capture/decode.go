package capture

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"
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
	FIN = 1 << iota
	SYN
	RST
	PSH
	ACK
)

// TCP is a TCP segment's header.
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
	protoTCP      = 6
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
		if len(b) < 20 {
			return Packet{}, errShort
		}
		ihl := int(b[0]&0x0f) * 4
		if b[0]>>4 != 4 || ihl < 20 {
			return Packet{}, errOther
		}
		if b[9] != protoTCP {
			return Packet{}, errOther
		}
		total := int(binary.BigEndian.Uint16(b[2:4]))
		src, dst := netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		if len(b) < ihl+20 || total < ihl+20 {
			return Packet{}, errShort
		}
		t := b[ihl:]
		doff := int(t[12]>>4) * 4
		if doff < 20 || total < ihl+doff {
			return Packet{}, errShort
		}
		p.TCP = &TCP{
			Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(t[0:2])),
			Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(t[2:4])),
			Seq:     binary.BigEndian.Uint32(t[4:8]),
			Ack:     binary.BigEndian.Uint32(t[8:12]),
			Flags:   t[13] & 0x1f,
			Window:  binary.BigEndian.Uint16(t[14:16]),
			Payload: total - ihl - doff,
		}
		return p, nil
	}
	return Packet{}, errOther
}
