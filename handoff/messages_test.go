package handoff

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
)

func TestMessagesRoundTrip(t *testing.T) {
	p := prepareMsg{VIP: netip.MustParseAddr("192.0.2.100"), Services: []string{"echo", "chat"}, Conns: 7}
	var p2 prepareMsg
	if err := p2.decode(p.encode()); err != nil || !reflect.DeepEqual(p, p2) {
		t.Fatalf("prepare: %+v, %v", p2, err)
	}
	sv := serviceMsg{Index: 1, Shared: []byte("shared"), Conns: 3}
	var sv2 serviceMsg
	if err := sv2.decode(sv.encode()); err != nil || !reflect.DeepEqual(sv, sv2) {
		t.Fatalf("service: %+v, %v", sv2, err)
	}
	entries := []connEntry{{Service: 0, TCP: []byte("tcp"), App: []byte("app")}, {Service: 1, TCP: []byte{}, App: []byte{}}}
	got, err := decodeConns(encodeConns(entries))
	if err != nil || !reflect.DeepEqual(got, entries) {
		t.Fatalf("conns: %+v, %v", got, err)
	}
	r := resultMsg{OK: true, Reason: "r", Name: "b", MAC: []byte{2, 0, 0, 0, 0, 1}, Conns: 9, Timing: []uint64{1, 2}, Extra: []byte("x")}
	var r2 resultMsg
	if err := r2.decode(r.encode()); err != nil || !reflect.DeepEqual(r, r2) {
		t.Fatalf("result: %+v, %v", r2, err)
	}
}

func TestMessagesRefuseBadInput(t *testing.T) {
	var p prepareMsg
	if err := p.decode([]byte{0, 0, 0, 3, 1, 2, 3}); err == nil {
		t.Error("a 3-byte VIP was accepted")
	}
	many := prepareMsg{VIP: netip.MustParseAddr("192.0.2.100"), Services: make([]string, maxServices+1)}
	if err := p.decode(many.encode()); err == nil {
		t.Error("too many services were accepted")
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := decodeConns(huge); err == nil {
		t.Error("a batch of 4 billion connections was accepted")
	}
	full := resultMsg{OK: true, Name: "b"}.encode()
	for i := 0; i < len(full); i++ {
		var r resultMsg
		if err := r.decode(full[:i]); err == nil {
			t.Errorf("a result cut at %d of %d bytes was accepted", i, len(full))
		}
	}
}

// FuzzDecode feeds junk to every message decoder: errors, never panics, and
// whatever decodes re-encodes to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(prepareMsg{VIP: netip.MustParseAddr("192.0.2.100"), Services: []string{"echo"}}.encode())
	f.Add(encodeConns([]connEntry{{TCP: []byte("x"), App: []byte("y")}}))
	f.Add(resultMsg{OK: true, Name: "a", Timing: []uint64{5}}.encode())
	f.Add(serviceMsg{Shared: []byte("s")}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		var p prepareMsg
		if p.decode(b) == nil && p.VIP.Is4() && !bytes.Equal(p.encode(), b) {
			t.Error("prepare: not a round trip")
		}
		var s serviceMsg
		if s.decode(b) == nil && !bytes.Equal(s.encode(), b) {
			t.Error("service: not a round trip")
		}
		if e, err := decodeConns(b); err == nil && !bytes.Equal(encodeConns(e), b) {
			t.Error("conns: not a round trip")
		}
		var r resultMsg
		if r.decode(b) == nil && !bytes.Equal(r.encode(), b) {
			t.Error("result: not a round trip")
		}
	})
}

func TestMovedRoundTrip(t *testing.T) {
	c := netip.MustParseAddrPort("192.0.2.10:40000")
	after := map[netip.AddrPort]TCPSummary{c: {SendSeq: 1, RecvSeq: 2, SndWscale: 7, MSS: 1460, SACK: true, Unacked: 5}}
	got, err := decodeAfter(encodeAfter(after))
	if err != nil || !reflect.DeepEqual(got, after) {
		t.Fatalf("after: %+v, %v", got, err)
	}
	if cl := decodeClients(encodeClients([]netip.AddrPort{c})); !cl[c] || len(cl) != 1 {
		t.Fatalf("clients: %v", cl)
	}
	if _, err := decodeAfter([]byte{3, 0, 0}); err == nil {
		t.Fatal("a truncated summary list was accepted")
	}
}
