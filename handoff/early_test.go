package handoff

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/sockshift/sockshift/handoff/catch"
	"github.com/sockshift/sockshift/handoff/tcphdr"
)

// segment builds an IPv4 TCP packet from client with sequence number seq
// and n bytes of payload.
func segment(client netip.AddrPort, seq uint32, n int) []byte {
	b := make([]byte, 20+32+n) // TCP header with 12 bytes of options
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[9] = 6
	a := client.Addr().As4()
	copy(b[12:16], a[:])
	copy(b[16:20], []byte{192, 0, 2, 100})
	tcp := b[20:]
	binary.BigEndian.PutUint16(tcp[0:], client.Port())
	binary.BigEndian.PutUint16(tcp[2:], 7)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 8 << 4
	return b
}

// TestBeyondDump: of the client packets caught before the freeze, the
// source re-sends only those with data its dump lacks (out-of-order data
// past the next expected byte), across the wrap of sequence numbers.
func TestBeyondDump(t *testing.T) {
	c1 := netip.MustParseAddrPort("192.0.2.10:40000")
	c2 := netip.MustParseAddrPort("192.0.2.10:40001")
	other := netip.MustParseAddrPort("192.0.2.11:40000")
	s := &source{frozen: []frozenConn{{client: c1, rcvNxt: 1000}, {client: c2, rcvNxt: 10}}}
	needed := s.beyondDump()
	for _, tc := range []struct {
		name string
		ip   []byte
		want bool
	}{
		{"pure ACK", segment(c1, 1000, 0), false},
		{"data the dump holds", segment(c1, 500, 500), false},
		{"data reaching past it", segment(c1, 900, 200), true},
		{"out-of-order data", segment(c1, 5000, 1448), true},
		{"wrapped: old data", segment(c2, 0xffffff00, 0x100), false},
		{"wrapped: new data", segment(c2, 0xfffffff0, 0x40), true},
		{"a connection not moved", segment(other, 1, 0), true},
		{"not TCP", append([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17}, make([]byte, 10)...), true},
		{"truncated", []byte{0x45, 0, 0}, true},
		{"bad data offset", func() []byte { b := segment(c1, 5000, 10); b[20+12] = 15 << 4; return b }(), true},
	} {
		if got := needed(tc.ip); got != tc.want {
			t.Errorf("%s: needed %v, want %v", tc.name, got, tc.want)
		}
	}
	// A GSO super-frame may carry 0 as its IPv4 length.
	gso := segment(c1, 2000, 64000)
	binary.BigEndian.PutUint16(gso[2:], 0)
	if h, err := tcphdr.Parse(gso); err != nil || h.Seq != 2000 || h.Payload != 64000 || h.Src != c1 {
		t.Errorf("GSO frame read as seq %d, %d bytes from %v (%v)", h.Seq, h.Payload, h.Src, err)
	}
}

// TestOwned: the target gets only the caught packets it can own: those of
// the connections that moved, and SYNs that came once our address was gone
// (our kernel answered the earlier ones: a second SYN-ACK from the target
// would reset the client). A packet of a connection that was closing here
// would draw a reset too.
func TestOwned(t *testing.T) {
	vip := netip.MustParseAddrPort("192.0.2.100:7")
	moved := netip.MustParseAddrPort("192.0.2.10:40000")
	closing := netip.MustParseAddrPort("192.0.2.10:40001")
	s := &source{frozen: []frozenConn{{client: moved, local: vip}}}
	owned := s.owned()
	syn := func(p []byte) []byte { p[20+13] = tcphdr.SYN; return p }
	for _, tc := range []struct {
		name string
		ip   []byte
		at   catch.Stage
		want bool
	}{
		{"data of a moved connection", segment(moved, 1000, 100), catch.AfterRelease, true},
		{"an ACK of a moved connection, before the freeze", segment(moved, 1000, 0), catch.BeforeFreeze, true},
		{"data of a connection closing here", segment(closing, 1, 10), catch.AfterRelease, false},
		{"the same client port to another address", func() []byte { b := segment(moved, 1, 10); b[19] = 101; return b }(), catch.AfterRelease, false},
		{"a SYN after the release", syn(segment(closing, 1, 0)), catch.AfterRelease, true},
		{"a SYN before the release", syn(segment(closing, 1, 0)), catch.BeforeRelease, false},
		{"not TCP", append([]byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17}, make([]byte, 10)...), catch.AfterRelease, true},
	} {
		if got := owned(tc.ip, tc.at); got != tc.want {
			t.Errorf("%s: owned %v, want %v", tc.name, got, tc.want)
		}
	}
}
