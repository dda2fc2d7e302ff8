package catch

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/bpf"
)

var (
	testVIP   = netip.MustParseAddr("198.51.100.100")
	ourMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x10}
	targetMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	otherMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99}
	clientIP  = netip.MustParseAddr("198.51.100.10")
)

// frameSpec describes a test frame: Ethernet, IPv4, then an 8-byte TCP or
// UDP header start (ports, then the id as a marker) and padding.
type frameSpec struct {
	dst, src net.HardwareAddr
	etype    uint16
	ipDst    netip.Addr
	proto    byte
	dport    uint16
	fragOff  uint16
	id       uint16
}

func (f frameSpec) bytes() []byte {
	b := make([]byte, ethHdrLen+20+20)
	copy(b[0:6], f.dst)
	copy(b[6:12], f.src)
	binary.BigEndian.PutUint16(b[12:], f.etype)
	ip := b[ethHdrLen:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint16(ip[4:], f.id)
	binary.BigEndian.PutUint16(ip[6:], f.fragOff)
	ip[8] = 64
	ip[9] = f.proto
	s, d := clientIP.As4(), f.ipDst.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	l4 := ip[20:]
	binary.BigEndian.PutUint16(l4[0:], 40000)
	binary.BigEndian.PutUint16(l4[2:], f.dport)
	binary.BigEndian.PutUint16(l4[4:], f.id) // marker in the sequence number
	l4[12] = 5 << 4
	l4[13] = 0x02 // SYN
	return b
}

func good(id uint16) frameSpec {
	return frameSpec{dst: ourMAC, src: clientMAC, etype: 0x0800, ipDst: testVIP, proto: 6, dport: 7, id: id}
}

func TestFilter(t *testing.T) {
	mod := func(f func(*frameSpec)) frameSpec { s := good(1); f(&s); return s }
	cases := []struct {
		name  string
		frame frameSpec
		ports []uint16
		want  bool
	}{
		{"vip port 7", good(1), []uint16{7}, true},
		{"any port", mod(func(s *frameSpec) { s.dport = 9 }), nil, true},
		{"one of many ports", mod(func(s *frameSpec) { s.dport = 6667 }), []uint16{7, 80, 6667}, true},
		{"other port", mod(func(s *frameSpec) { s.dport = 8 }), []uint16{7}, false},
		{"other IP", mod(func(s *frameSpec) { s.ipDst = netip.MustParseAddr("198.51.100.1") }), nil, false},
		{"UDP", mod(func(s *frameSpec) { s.proto = 17 }), nil, false},
		{"other MAC", mod(func(s *frameSpec) { s.dst = otherMAC }), nil, false},
		{"MAC differs in last bytes", mod(func(s *frameSpec) { s.dst = net.HardwareAddr{2, 0, 0, 0, 1, 1} }), nil, false},
		{"broadcast", mod(func(s *frameSpec) { s.dst = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff} }), nil, false},
		{"re-sent to target", mod(func(s *frameSpec) { s.dst, s.src = targetMAC, ourMAC }), nil, false},
		{"IPv6 ethertype", mod(func(s *frameSpec) { s.etype = 0x86dd }), nil, false},
		{"ARP ethertype", mod(func(s *frameSpec) { s.etype = 0x0806 }), nil, false},
		{"later fragment, ports", mod(func(s *frameSpec) { s.fragOff = 5 }), []uint16{7}, false},
		{"later fragment, all ports", mod(func(s *frameSpec) { s.fragOff = 5 }), nil, true},
		{"first fragment with MF", mod(func(s *frameSpec) { s.fragOff = 0x2000 }), []uint16{7}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prog, err := filter(ourMAC, testVIP, tc.ports)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatalf("filter does not load: %v", err)
			}
			frame := tc.frame.bytes()
			n, err := vm.Run(frame)
			if err != nil {
				t.Fatal(err)
			}
			if got := n > 0; got != tc.want {
				t.Fatalf("filter passes %v (snap %d); want %v", got, n, tc.want)
			}
			if tc.want && n < len(frame) {
				t.Fatalf("snap length %d shorter than the frame (%d)", n, len(frame))
			}
		})
	}
}

// With the largest port list allowed, the first and the last port still
// match: every jump reaches its target.
func TestFilterManyPorts(t *testing.T) {
	var ports []uint16
	for p := 1; p <= maxPorts; p++ {
		ports = append(ports, uint16(p))
	}
	prog, err := filter(ourMAC, testVIP, ports)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpf.Assemble(prog); err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	for port, want := range map[uint16]bool{1: true, maxPorts: true, maxPorts + 1: false} {
		f := good(1)
		f.dport = port
		if n, _ := vm.Run(f.bytes()); (n > 0) != want {
			t.Errorf("port %d passes %v; want %v", port, n > 0, want)
		}
	}
}

func TestResolve(t *testing.T) {
	o, err := resolve(testVIP, nil)
	if err != nil || o.maxBytes != 64<<20 || o.grace != 200*time.Millisecond || o.ports != nil {
		t.Fatalf("defaults: %+v, %v", o, err)
	}
	o, err = resolve(testVIP, &Config{Ports: []uint16{7, 7, 9}, MaxBytes: 5, Grace: time.Second})
	if err != nil || o.maxBytes != 5 || o.grace != time.Second || len(o.ports) != 2 {
		t.Fatalf("set: %+v, %v", o, err)
	}
	many := make([]uint16, maxPorts+1)
	for i := range many {
		many[i] = uint16(i)
	}
	for name, c := range map[string]struct {
		vip netip.Addr
		cfg *Config
	}{
		"IPv6":      {netip.MustParseAddr("2001:db8::1"), nil},
		"zero addr": {netip.Addr{}, nil},
		"MaxBytes":  {testVIP, &Config{MaxBytes: -1}},
		"Grace":     {testVIP, &Config{Grace: -1}},
		"ports":     {testVIP, &Config{Ports: many}},
	} {
		if _, err := resolve(c.vip, c.cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// fakeConn is a frameConn fed from a channel, recording what is sent.
type fakeConn struct {
	in      chan []byte
	wake    chan struct{}
	closed  chan struct{}
	onWrite func(n int) // called before the n-th write (from 1)

	mu       sync.Mutex
	deadline time.Time
	sent     [][]byte
}

func newFake() *fakeConn {
	return &fakeConn{in: make(chan []byte, 100), wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (f *fakeConn) readFrame(b []byte) (int, error) {
	for {
		f.mu.Lock()
		d := f.deadline
		f.mu.Unlock()
		var timer <-chan time.Time
		if !d.IsZero() {
			if !time.Now().Before(d) {
				return 0, os.ErrDeadlineExceeded
			}
			timer = time.After(time.Until(d))
		}
		select {
		case fr := <-f.in:
			copy(b, fr)
			return len(fr), nil
		case <-f.wake:
		case <-timer:
		}
	}
}

func (f *fakeConn) writeFrame(b []byte) error {
	f.mu.Lock()
	n := len(f.sent) + 1
	hook := f.onWrite
	f.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	f.mu.Lock()
	f.sent = append(f.sent, append([]byte(nil), b...))
	f.mu.Unlock()
	return nil
}

func (f *fakeConn) setReadDeadline(t time.Time) error {
	f.mu.Lock()
	f.deadline = t
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

func (f *fakeConn) setWriteDeadline(time.Time) error { return nil }
func (f *fakeConn) kernelDrops() int                 { return 0 }
func (f *fakeConn) close() error                     { close(f.closed); return nil }

func (f *fakeConn) sentIDs() []uint16 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []uint16
	for _, s := range f.sent {
		ids = append(ids, binary.BigEndian.Uint16(s[vnetHdrLen+ethHdrLen+4:]))
	}
	return ids
}

// withVnet puts an (all-zero) virtio header in front of a frame, as a read
// with PACKET_VNET_HDR returns it.
func withVnet(f frameSpec) []byte {
	return append(make([]byte, vnetHdrLen), f.bytes()...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func waitDone(t *testing.T, c *Catcher) {
	t.Helper()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed")
	}
}

// Frames that arrive while the kept ones are being re-sent go out behind
// them, and stragglers after Forward go out at once, all in arrival order,
// with the Ethernet addresses rewritten and everything else untouched.
func TestForwardOrder(t *testing.T) {
	f := newFake()
	c := start(f, "fake0", testVIP, ourMAC, options{maxBytes: 1 << 20, grace: time.Hour})
	for id := uint16(1); id <= 3; id++ {
		f.in <- withVnet(good(id))
	}
	waitFor(t, "3 caught", func() bool { return c.Stats().Caught == 3 })
	f.mu.Lock()
	f.onWrite = func(n int) {
		if n == 1 { // mid-batch: a frame arrives
			f.in <- withVnet(good(4))
			waitFor(t, "4 caught", func() bool { return c.Stats().Caught == 4 })
		}
	}
	f.mu.Unlock()
	st, err := c.Forward(targetMAC)
	if err != nil {
		t.Fatal(err)
	}
	if st.Forwarded != 4 || st.Caught != 4 || st.Dropped != 0 {
		t.Fatalf("stats after Forward: %+v; want 4 caught and forwarded", st)
	}
	f.in <- withVnet(good(5))
	waitFor(t, "straggler forwarded", func() bool { return c.Stats().Forwarded == 5 })
	if got := f.sentIDs(); !equalIDs(got, []uint16{1, 2, 3, 4, 5}) {
		t.Fatalf("sent ids %v; want 1..5 in order", got)
	}
	for i, s := range f.sent {
		want := withVnet(good(uint16(i + 1)))
		copy(want[vnetHdrLen:], targetMAC)
		copy(want[vnetHdrLen+6:], ourMAC)
		if !bytes.Equal(s, want) {
			t.Fatalf("frame %d sent as\n%x\nwant\n%x", i+1, s, want)
		}
	}
	if _, err := c.Forward(targetMAC); err == nil {
		t.Error("second Forward succeeded")
	}
	c.Stop() // ends the hour-long grace period
	waitDone(t, c)
	select {
	case <-f.closed:
	default:
		t.Fatal("Done closed before the socket")
	}
}

func TestBoundAndStop(t *testing.T) {
	f := newFake()
	size := len(good(1).bytes())
	c := start(f, "fake0", testVIP, ourMAC, options{maxBytes: 2*size + 1, grace: time.Hour})
	for id := uint16(1); id <= 3; id++ {
		f.in <- withVnet(good(id))
	}
	f.in <- make([]byte, readBufLen+1) // truncated
	f.in <- make([]byte, vnetHdrLen+5) // runt
	waitFor(t, "5 caught", func() bool { return c.Stats().Caught == 5 })
	if st := c.Stats(); st.Dropped != 3 || st.Bytes != 2*size {
		t.Fatalf("stats %+v; want 3 dropped (bound, truncated, runt), %d bytes", st, 2*size)
	}
	c.Stop()
	c.Stop()
	waitDone(t, c)
	if _, err := c.Forward(targetMAC); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Forward after Stop: %v; want an error", err)
	}
	if len(f.sent) != 0 {
		t.Errorf("%d frames sent after Stop", len(f.sent))
	}
	if _, err := c.Forward(net.HardwareAddr{1, 2, 3}); err == nil {
		t.Error("Forward to a 3-byte MAC succeeded")
	}
}

func equalIDs(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDropEarly: of the frames kept before Mark, only those the filter
// needs are re-sent; every frame kept after Mark is, in order.
func TestDropEarly(t *testing.T) {
	f := newFake()
	c := start(f, "fake0", testVIP, ourMAC, options{maxBytes: 1 << 20, grace: time.Hour})
	defer func() { c.Stop(); waitDone(t, c) }()
	for id := uint16(1); id <= 4; id++ {
		f.in <- withVnet(good(id))
	}
	waitFor(t, "4 caught", func() bool { return c.Stats().Caught == 4 })
	c.DropEarly(func([]byte) bool { return false }) // before Mark: no effect
	c.Mark()
	for id := uint16(5); id <= 6; id++ {
		f.in <- withVnet(good(id))
	}
	waitFor(t, "6 caught", func() bool { return c.Stats().Caught == 6 })
	var seen []uint16
	c.DropEarly(func(ip []byte) bool {
		id := binary.BigEndian.Uint16(ip[4:])
		seen = append(seen, id)
		return id == 2 || id == 6 // 6 is after Mark: never asked
	})
	if !equalIDs(seen, []uint16{1, 2, 3, 4}) {
		t.Errorf("filter asked about %v, want the 4 early frames", seen)
	}
	st, err := c.Forward(targetMAC)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.sentIDs(); !equalIDs(got, []uint16{2, 5, 6}) {
		t.Fatalf("sent %v, want 2 (needed) then 5 and 6 (after Mark)", got)
	}
	if st.Early != 3 || st.Forwarded != 3 || st.Caught != 6 {
		t.Fatalf("stats %+v, want 6 caught, 3 early let go, 3 forwarded", st)
	}
}

// TestOnly: Forward delivers only what Only lets through, kept frames and
// stragglers alike, each with when it arrived, and counts the rest.
func TestOnly(t *testing.T) {
	f := newFake()
	c := start(f, "fake0", testVIP, ourMAC, options{maxBytes: 1 << 20, grace: time.Hour})
	defer func() { c.Stop(); waitDone(t, c) }()
	catchIDs := func(ids ...uint16) {
		for _, id := range ids {
			f.in <- withVnet(good(id))
		}
		want := c.Stats().Caught + len(ids)
		waitFor(t, "caught", func() bool { return c.Stats().Caught == want })
	}
	catchIDs(1, 2)    // before the freeze
	c.Mark()          // the freeze
	catchIDs(3, 4)    // between the freeze and the release
	c.Released()      // the release
	c.Released()      // only the first call counts
	catchIDs(5, 6, 7) // after it
	c.DropEarly(func(ip []byte) bool { return binary.BigEndian.Uint16(ip[4:]) != 1 })
	stages := map[uint16]Stage{}
	var mu sync.Mutex
	c.Only(func(ip []byte, at Stage) bool {
		id := binary.BigEndian.Uint16(ip[4:])
		mu.Lock()
		stages[id] = at
		mu.Unlock()
		return id%2 == 0 || id == 7
	})
	if _, err := c.Forward(targetMAC); err != nil {
		t.Fatal(err)
	}
	catchIDs(8, 9) // stragglers
	waitFor(t, "the straggler forwarded", func() bool { return c.Stats().Forwarded == 5 })
	if got := f.sentIDs(); !equalIDs(got, []uint16{2, 4, 6, 7, 8}) {
		t.Fatalf("sent %v, want the even ones and 7", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[uint16]Stage{2: BeforeFreeze, 3: BeforeRelease, 4: BeforeRelease, 5: AfterRelease, 6: AfterRelease, 7: AfterRelease, 8: AfterRelease, 9: AfterRelease}
	for id, at := range want {
		if stages[id] != at {
			t.Errorf("frame %d asked about as stage %d, want %d (all asked: %v)", id, stages[id], at, stages)
		}
	}
	if st := c.Stats(); st.Others != 3 || st.Early != 1 {
		t.Errorf("stats %+v, want 3 others (3, 5, 9) and 1 early (1)", st)
	}
}
