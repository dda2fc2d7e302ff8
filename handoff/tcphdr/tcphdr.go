// Package tcphdr reads the IPv4 and TCP headers of a packet: what a
// source checks in the client packets it caught (catch.Catcher.Only gets
// them as IPv4 packets), and what the demo's console shows of a capture.
package tcphdr

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// TCP flags.
const (
	FIN = 1 << iota
	SYN
	RST
	PSH
	ACK
)

// Header is a TCP segment's header, with its IPv4 addresses.
type Header struct {
	Src, Dst netip.AddrPort
	Seq, Ack uint32
	Flags    uint8 // FIN, SYN, RST, PSH, ACK
	Window   uint16
	Payload  int // bytes of data, from the IPv4 header's length
}

var (
	// ErrShort is returned for a packet cut inside its headers.
	ErrShort = errors.New("tcphdr: packet too short")
	// ErrOther is returned for anything but TCP over IPv4.
	ErrOther = errors.New("tcphdr: not TCP over IPv4")
)

// Parse reads the headers of the IPv4 packet b. Only the first 20 bytes of
// the TCP header must be there (a capture's snap length may cut its
// options and data); the payload's length comes from the IPv4 header,
// except that a GSO super-frame may say 0, and then it is what b holds.
func Parse(b []byte) (Header, error) {
	if len(b) < 20 {
		return Header{}, ErrShort
	}
	ihl := int(b[0]&0x0f) * 4
	if b[0]>>4 != 4 || ihl < 20 || b[9] != 6 {
		return Header{}, ErrOther
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total == 0 {
		total = len(b)
	}
	if len(b) < ihl+20 || total < ihl+20 {
		return Header{}, ErrShort
	}
	t := b[ihl:]
	doff := int(t[12]>>4) * 4
	if doff < 20 || total < ihl+doff {
		return Header{}, ErrShort
	}
	return Header{
		Src:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), binary.BigEndian.Uint16(t[0:2])),
		Dst:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), binary.BigEndian.Uint16(t[2:4])),
		Seq:     binary.BigEndian.Uint32(t[4:8]),
		Ack:     binary.BigEndian.Uint32(t[8:12]),
		Flags:   t[13] & 0x1f,
		Window:  binary.BigEndian.Uint16(t[14:16]),
		Payload: total - ihl - doff,
	}, nil
}
