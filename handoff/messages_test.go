package handoff

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"

	"github.com/sockshift/sockshift/handoff/repair"
	"github.com/sockshift/sockshift/handoff/wire"
)

func TestMessagesRoundTrip(t *testing.T) {
	p := prepareMsg{Services: []string{"echo", "chat"}, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}, Conns: 7}
	var p2 prepareMsg
	if err := p2.decode(p.encode()); err != nil || !reflect.DeepEqual(p, p2) {
		t.Fatalf("prepare: %+v, %v", p2, err)
	}
	sv := serviceMsg{Index: 1, Shared: []byte("shared"), Conns: 3}
	var sv2 serviceMsg
	if err := sv2.decode(sv.encode()); err != nil || !reflect.DeepEqual(sv, sv2) {
		t.Fatalf("service: %+v, %v", sv2, err)
	}
	entries := []connEntry{{Service: 0, TCP: []byte("tcp"), App: []byte("app")}, {Service: 1}, {Service: 3, New: true}}
	got, err := decodeConns(mustEncodeConns(t, entries))
	if err != nil || !reflect.DeepEqual(got, entries) {
		t.Fatalf("conns: %+v, %v", got, err)
	}
	r := resultMsg{OK: true, Reason: "r", Name: "b", MAC: []byte{2, 0, 0, 0, 0, 1}, Conns: 9, Timing: []uint64{1, 2}, Extra: []byte("x"),
		Refused: []refusal{{Addr: netip.MustParseAddr("192.0.2.101"), Reason: "connection 192.0.2.10:4000 refused"}}}
	var r2 resultMsg
	if err := r2.decode(r.encode()); err != nil || !reflect.DeepEqual(r, r2) {
		t.Fatalf("result: %+v, %v", r2, err)
	}
}

func mustEncodeConns(t testing.TB, entries []connEntry) []byte {
	t.Helper()
	b, err := encodeConns(entries)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConnsCarryLargeStatesInPlace: a state with megabytes queued is
// encoded straight into the batch (not marshaled first), into one buffer
// with room for the seal, and decodes to the same state with its queues
// read from the frame itself.
func TestConnsCarryLargeStatesInPlace(t *testing.T) {
	big := &repair.State{
		Local: netip.MustParseAddrPort("192.0.2.100:7"), Remote: netip.MustParseAddrPort("192.0.2.10:40000"),
		SendSeq: 1, RecvSeq: 2, MSS: 1448,
		RecvQueue: bytes.Repeat([]byte("r"), bigState), Unacked: []byte("unacked"), Unsent: []byte("unsent"),
	}
	small := &repair.State{Local: big.Local, Remote: netip.MustParseAddrPort("192.0.2.10:40001")}
	smallTCP, err := small.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b := mustEncodeConns(t, []connEntry{{Service: 1, state: big, App: []byte("app")}, {TCP: smallTCP}})
	if cap(b)-len(b) < wire.TagLen {
		t.Errorf("batch of %d bytes has %d spare, want room for the %d-byte seal", len(b), cap(b)-len(b), wire.TagLen)
	}
	got, err := decodeConns(b)
	if err != nil || len(got) != 2 {
		t.Fatalf("decode: %d entries, %v", len(got), err)
	}
	st, err := repair.DecodeState(got[0].TCP)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(st, big) || got[0].Service != 1 || string(got[0].App) != "app" {
		t.Fatalf("large state came back as %v (service %d, app %q)", st, got[0].Service, got[0].App)
	}
	if &st.RecvQueue[0] != &got[0].TCP[len(got[0].TCP)-len(big.Unsent)-4-len(big.Unacked)-4-len(big.RecvQueue)] {
		t.Error("the decoded receive queue is a copy, not the frame's bytes")
	}
	if !bytes.Equal(got[1].TCP, smallTCP) {
		t.Error("the small state did not come back as marshaled")
	}
	// A state that cannot be restored fails the batch instead of sending
	// a broken one.
	bad := *big
	bad.SndWscale = 15
	if _, err := encodeConns([]connEntry{{state: &bad}}); err == nil {
		t.Error("a window scale of 15 was encoded")
	}
}

func TestMessagesRefuseBadInput(t *testing.T) {
	var p prepareMsg
	if err := p.decode([]byte{0, 1, 0, 1, 'x', 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0}); err == nil {
		t.Error("a 3-byte service address was accepted")
	}
	many := prepareMsg{Services: make([]string, maxServices+1), Addrs: make([]netip.Addr, maxServices+1)}
	for i := range many.Addrs {
		many.Addrs[i] = netip.MustParseAddr("192.0.2.100")
	}
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
	f.Add(prepareMsg{Services: []string{"echo"}, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}.encode())
	f.Add(resultMsg{OK: true, Refused: []refusal{{Addr: netip.MustParseAddr("192.0.2.101"), Reason: "r"}}}.encode())
	f.Add(mustEncodeConns(f, []connEntry{{TCP: []byte("x"), App: []byte("y")}}))
	f.Add(resultMsg{OK: true, Name: "a", Timing: []uint64{5}}.encode())
	f.Add(serviceMsg{Shared: []byte("s")}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		var p prepareMsg
		if p.decode(b) == nil && !bytes.Equal(p.encode(), b) {
			t.Error("prepare: not a round trip")
		}
		var s serviceMsg
		if s.decode(b) == nil && !bytes.Equal(s.encode(), b) {
			t.Error("service: not a round trip")
		}
		if e, err := decodeConns(b); err == nil {
			if again, err := encodeConns(e); err != nil || !bytes.Equal(again, b) {
				t.Error("conns: not a round trip")
			}
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
