package tcphdr

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// packet is an IPv4 packet from 192.0.2.10:40000 to 192.0.2.100:7 with a
// 32-byte TCP header (timestamps) and n bytes of data.
func packet(n int) []byte {
	b := make([]byte, 20+32+n)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[9] = 6
	copy(b[12:], []byte{192, 0, 2, 10, 192, 0, 2, 100})
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 7)
	binary.BigEndian.PutUint32(t[4:], 1000)
	binary.BigEndian.PutUint32(t[8:], 2000)
	t[12] = 8 << 4
	t[13] = PSH | ACK
	binary.BigEndian.PutUint16(t[14:], 502)
	return b
}

func TestParse(t *testing.T) {
	want := Header{Src: netip.MustParseAddrPort("192.0.2.10:40000"), Dst: netip.MustParseAddrPort("192.0.2.100:7"),
		Seq: 1000, Ack: 2000, Flags: PSH | ACK, Window: 502, Payload: 16}
	if h, err := Parse(packet(16)); err != nil || h != want {
		t.Fatalf("got %+v, %v", h, err)
	}
	// Cut after 20 bytes of TCP (a snap length): still read, the length
	// from the IPv4 header.
	if h, err := Parse(packet(16)[:40]); err != nil || h.Payload != 16 {
		t.Fatalf("cut after the fixed TCP header: %+v, %v", h, err)
	}
	// A GSO super-frame may say 0 for its length.
	gso := packet(64000)
	binary.BigEndian.PutUint16(gso[2:], 0)
	if h, err := Parse(gso); err != nil || h.Payload != 64000 {
		t.Fatalf("GSO frame: %+v, %v", h, err)
	}
	for n := range 40 {
		if _, err := Parse(packet(16)[:n]); !errors.Is(err, ErrShort) {
			t.Fatalf("cut to %d bytes: %v, want ErrShort", n, err)
		}
	}
	udp := packet(16)
	udp[9] = 17
	if _, err := Parse(udp); !errors.Is(err, ErrOther) {
		t.Fatalf("UDP: %v, want ErrOther", err)
	}
}
