package repair

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func sampleState() *State {
	return &State{
		Local:         netip.MustParseAddrPort("192.0.2.100:7"),
		Remote:        netip.MustParseAddrPort("192.0.2.10:40000"),
		SendSeq:       0xfffffff0,
		RecvSeq:       12345,
		RecvQueue:     []byte("hello"),
		Unacked:       []byte("in flight"),
		Unsent:        []byte("never sent"),
		MSS:           1448,
		SACK:          true,
		Timestamps:    true,
		WindowScaling: true,
		SndWscale:     7,
		RcvWscale:     9,
		Timestamp:     0x12345679,
		Window:        Window{SndWl1: 1, SndWnd: 2, MaxWindow: 3, RcvWnd: 4, RcvWup: 5},
		SndBuf:        87040,
		RcvBuf:        131072,
		NoDelay:       true,
		KeepAlive:     true,
		KeepIdle:      15,
		KeepIntvl:     15,
		KeepCnt:       9,
	}
}

// equalState compares two states; nil and empty queues are equal.
func equalState(a, b *State) bool {
	ac, bc := *a, *b
	ac.RecvQueue, ac.Unacked, ac.Unsent = nil, nil, nil
	bc.RecvQueue, bc.Unacked, bc.Unsent = nil, nil, nil
	return reflect.DeepEqual(ac, bc) && bytes.Equal(a.RecvQueue, b.RecvQueue) &&
		bytes.Equal(a.Unacked, b.Unacked) && bytes.Equal(a.Unsent, b.Unsent)
}

func TestStateRoundTrip(t *testing.T) {
	for _, s := range []*State{sampleState(), {Local: netip.MustParseAddrPort("127.0.0.1:1"), Remote: netip.MustParseAddrPort("127.0.0.1:2")}} {
		b, err := s.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var got State
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !equalState(s, &got) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, *s)
		}
	}
}

func TestStateString(t *testing.T) {
	got := sampleState().String()
	want := "192.0.2.100:7->192.0.2.10:40000 snd=4294967280 rcv=12345 q=5/9/10"
	if got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestStateMarshalRejects(t *testing.T) {
	for name, mod := range map[string]func(*State){
		"ipv6 local":  func(s *State) { s.Local = netip.MustParseAddrPort("[2001:db8::1]:7") },
		"4in6 remote": func(s *State) { s.Remote = netip.MustParseAddrPort("[::ffff:192.0.2.1]:7") },
		"no address":  func(s *State) { s.Remote = netip.AddrPort{} },
		"wscale":      func(s *State) { s.RcvWscale = 15 },
		"big queue":   func(s *State) { s.Unsent = make([]byte, MaxQueue+1) },
	} {
		s := sampleState()
		mod(s)
		if _, err := s.MarshalBinary(); err == nil {
			t.Errorf("%s: MarshalBinary accepted %v", name, s)
		}
	}
}

func TestStateUnmarshalRejects(t *testing.T) {
	good, err := sampleState().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	queueLenAt := headerLen // length of the receive queue
	cases := map[string][]byte{
		"empty":         nil,
		"magic only":    []byte(stateMagic),
		"bad magic":     edit(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version 0":     edit(func(b []byte) []byte { b[4] = 0; return b }),
		"version 2":     edit(func(b []byte) []byte { b[4] = 2; return b }),
		"unknown flags": edit(func(b []byte) []byte { b[5] |= 0x80; return b }),
		"wscale 15":     edit(func(b []byte) []byte { b[6] = 15; return b }),
		"trailing byte": append(append([]byte(nil), good...), 0),
		"oversized queue": edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[queueLenAt:], MaxQueue+1)
			return b
		}),
		"queue longer than input": edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[queueLenAt:], 1000)
			return b
		}),
		"huge length": edit(func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[queueLenAt:], 0xffffffff)
			return b
		}),
	}
	for i := range len(good) { // every truncation
		cases["truncated at "+strconv.Itoa(i)] = good[:i]
	}
	for name, b := range cases {
		s := sampleState()
		before := *s
		err := s.UnmarshalBinary(b)
		if err == nil {
			t.Errorf("%s: UnmarshalBinary accepted %d bytes", name, len(b))
			continue
		}
		if !strings.HasPrefix(err.Error(), "repair: decode state: ") {
			t.Errorf("%s: error without context: %v", name, err)
		}
		if !equalState(s, &before) {
			t.Errorf("%s: failed UnmarshalBinary changed the state", name)
		}
	}
}

func FuzzStateRoundTrip(f *testing.F) {
	f.Add([]byte{192, 0, 2, 100}, uint16(7), []byte{192, 0, 2, 10}, uint16(40000), uint32(1), uint32(2),
		[]byte("rq"), []byte("unacked"), []byte("unsent"), uint32(1448), byte(0x1f), byte(7), byte(9),
		uint32(3), uint32(4), uint32(5), uint32(6), uint32(7), uint32(8), uint32(9), uint32(10), uint32(11), uint32(12), uint32(13))
	f.Add([]byte{127, 0, 0, 1}, uint16(0), []byte{127, 0, 0, 1}, uint16(65535), uint32(0xffffffff), uint32(0),
		[]byte(nil), []byte{}, []byte{0}, uint32(0), byte(0), byte(0), byte(14),
		uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, local []byte, lport uint16, remote []byte, rport uint16, sendSeq, recvSeq uint32,
		rq, unacked, unsent []byte, mss uint32, flags, sws, rws byte,
		ts, wl1, wnd, maxw, rwnd, rwup, sndbuf, rcvbuf, idle, intvl, cnt uint32) {
		if len(local) != 4 || len(remote) != 4 {
			return
		}
		s := &State{
			Local:   netip.AddrPortFrom(netip.AddrFrom4([4]byte(local)), lport),
			Remote:  netip.AddrPortFrom(netip.AddrFrom4([4]byte(remote)), rport),
			SendSeq: sendSeq, RecvSeq: recvSeq, RecvQueue: rq, Unacked: unacked, Unsent: unsent, MSS: mss,
			SACK: flags&1 != 0, Timestamps: flags&2 != 0, WindowScaling: flags&4 != 0,
			NoDelay: flags&8 != 0, KeepAlive: flags&16 != 0,
			SndWscale: sws, RcvWscale: rws, Timestamp: ts,
			Window: Window{wl1, wnd, maxw, rwnd, rwup}, SndBuf: sndbuf, RcvBuf: rcvbuf,
			KeepIdle: idle, KeepIntvl: intvl, KeepCnt: cnt,
		}
		b, err := s.MarshalBinary()
		if sws > maxWscale || rws > maxWscale {
			if err == nil {
				t.Fatalf("MarshalBinary accepted window scale %d/%d", sws, rws)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		var got State
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !equalState(s, &got) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, *s)
		}
	})
}

func FuzzStateUnmarshal(f *testing.F) {
	good, err := sampleState().MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte(stateMagic))
	f.Add(good[:headerLen+2])
	empty, _ := (&State{Local: netip.MustParseAddrPort("1.2.3.4:5"), Remote: netip.MustParseAddrPort("5.6.7.8:9")}).MarshalBinary()
	f.Add(empty)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s State
		if err := s.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := s.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded state does not encode: %v", err)
		}
		var s2 State
		if err := s2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !equalState(&s, &s2) {
			t.Fatalf("re-encode changed the state:\n%+v\n%+v", s, s2)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decoding is not canonical: %x -> %x", b, again)
		}
	})
}

// TestStateAppendAndDecodeInPlace: AppendBinary writes what MarshalBinary
// does after any prefix, and leaves b alone when it refuses; DecodeState
// decodes the same state with queues that are b's own bytes.
func TestStateAppendAndDecodeInPlace(t *testing.T) {
	s := sampleState()
	want, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != s.EncodedLen() {
		t.Fatalf("EncodedLen %d, encoding %d bytes", s.EncodedLen(), len(want))
	}
	got, err := s.AppendBinary([]byte("prefix"))
	if err != nil || string(got[:6]) != "prefix" || !bytes.Equal(got[6:], want) {
		t.Fatalf("AppendBinary: %v, or not the prefix then the marshaled state", err)
	}
	bad := *s
	bad.RcvWscale = 15
	if b, err := bad.AppendBinary([]byte("prefix")); err == nil || string(b) != "prefix" {
		t.Fatalf("AppendBinary of a bad state: %q, %v; want the prefix alone and an error", b, err)
	}

	d, err := DecodeState(want)
	if err != nil || !reflect.DeepEqual(d, s) {
		t.Fatalf("DecodeState: %v, %v", d, err)
	}
	q := d.RecvQueue
	if len(q) == 0 || &q[0] != &want[bytes.Index(want, s.RecvQueue)] {
		t.Fatal("DecodeState copied the receive queue")
	}
	if _, err := DecodeState(want[:len(want)-1]); err == nil {
		t.Fatal("DecodeState took a truncated state")
	}
	var u State
	if err := u.UnmarshalBinary(want); err != nil || &u.RecvQueue[0] == &q[0] {
		t.Fatalf("UnmarshalBinary: %v, or its queue aliases the input", err)
	}
}
