package handoff

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/handoff/catch"
)

// These tests run the whole protocol between two nodes in this process,
// over loopback, with the host's network replaced by fakeNet: no root, no
// namespaces. With services that hold no connections they prove what the
// hand-off does with addresses, announcements, catchers and services,
// and that every rollback puts each of them back.

// fakeNet is a hostNet that remembers instead of touching the host.
type fakeNet struct {
	mac net.HardwareAddr

	mu        sync.Mutex
	held      map[netip.Addr]bool
	segment   []*fakeNet // every host of the fake segment, for Probe
	announced []netip.Addr
	catchers  []*fakeCatcher
}

func newFakeNet(last byte) *fakeNet {
	return &fakeNet{mac: net.HardwareAddr{2, 0, 0, 0, 0, last}, held: map[netip.Addr]bool{}}
}

func (f *fakeNet) HardwareAddr() net.HardwareAddr { return f.mac }
func (f *fakeNet) Close() error                   { return nil }

func (f *fakeNet) Add(a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held[a] = true
	return nil
}

func (f *fakeNet) Remove(a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.held, a)
	return nil
}

func (f *fakeNet) Held(a netip.Addr) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.held[a], nil
}

// Probe answers for the other hosts of the fake segment.
func (f *fakeNet) Probe(a netip.Addr) (net.HardwareAddr, error) {
	for _, o := range f.segment {
		if o != f {
			if held, _ := o.Held(a); held {
				return o.mac, nil
			}
		}
	}
	return nil, nil
}

func (f *fakeNet) Announce(a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.announced = append(f.announced, a)
	return nil
}

func (f *fakeNet) Catch(a netip.Addr) (catcher, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &fakeCatcher{addr: a}
	f.catchers = append(f.catchers, c)
	return c, nil
}

// holding lists the addresses held, sorted.
func (f *fakeNet) holding() []netip.Addr {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for a := range f.held {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

type fakeCatcher struct {
	addr netip.Addr

	mu        sync.Mutex
	marked    bool
	stopped   bool
	forwarded net.HardwareAddr
}

func (c *fakeCatcher) Mark()                               { c.mu.Lock(); c.marked = true; c.mu.Unlock() }
func (c *fakeCatcher) DropEarly(func([]byte) bool)         {}
func (c *fakeCatcher) Released()                           {}
func (c *fakeCatcher) Only(func([]byte, catch.Stage) bool) {}
func (c *fakeCatcher) Stop()                               { c.mu.Lock(); c.stopped = true; c.mu.Unlock() }

func (c *fakeCatcher) Forward(to net.HardwareAddr) (catch.Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forwarded = to
	return catch.Stats{}, nil
}

// idleService is a service with no connections that counts what the
// library asks of it.
type idleService struct {
	name string

	mu                        sync.Mutex
	quiesced, settled, adopts int
	adopted                   []byte
	refuseShared              error
}

func (s *idleService) Name() string { return s.name }

// CheckShared refuses what refuseShared says (SharedChecker).
func (s *idleService) CheckShared(shared []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refuseShared
}

func (s *idleService) Quiesce(context.Context) (Paused, error) {
	s.mu.Lock()
	s.quiesced++
	s.mu.Unlock()
	return &idlePause{s}, nil
}

func (s *idleService) Adopt(shared []byte, conns []Adopted) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adopts++
	s.adopted = shared
	return nil
}

func (s *idleService) counts() (quiesced, settled, adopts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quiesced, s.settled, s.adopts
}

type idlePause struct{ s *idleService }

func (p *idlePause) Shared() []byte      { return []byte("state of " + p.s.name) }
func (p *idlePause) Conns() []PausedConn { return nil }
func (p *idlePause) Settle(func(*net.TCPConn) bool) {
	p.s.mu.Lock()
	p.s.settled++
	p.s.mu.Unlock()
}

var (
	vipEcho = netip.MustParseAddr("192.0.2.100")
	vipChat = netip.MustParseAddr("192.0.2.101")
)

// pair is two nodes, a and b, talking over loopback (127.0.0.1 and
// 127.0.0.2, one port), each with fake network and its own services; a
// holds both service addresses.
type pair struct {
	a, b         *Node
	netA, netB   *fakeNet
	svcA, svcB   map[string]*idleService
	hookA, hookB *stepFault
}

// stepFault fails one step; Skip leaves out what skip names.
type stepFault struct {
	mu         sync.Mutex
	step, skip Step
}

func (h *stepFault) set(step Step) {
	h.mu.Lock()
	h.step = step
	h.mu.Unlock()
}

func (h *stepFault) At(_ context.Context, step Step) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if step == h.step {
		return errors.New("injected")
	}
	return nil
}

func (h *stepFault) Skip(step Step) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return step == h.skip
}

func newPair(t *testing.T) *pair {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs 127.0.0.2 on loopback, as Linux has")
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	key := []byte("0123456789abcdef0123456789abcdef")
	p := &pair{netA: newFakeNet(1), netB: newFakeNet(2), hookA: &stepFault{}, hookB: &stepFault{}}
	p.netA.segment = []*fakeNet{p.netA, p.netB}
	p.netB.segment = p.netA.segment
	mk := func(name, addr string, hn *fakeNet, hook Hook) (*Node, map[string]*idleService) {
		svcs := map[string]*idleService{"echo": {name: "echo"}, "chat": {name: "chat"}}
		cfg, err := Config{Name: name, Addr: netip.MustParseAddr(addr), Interface: "eth0", VIP: vipEcho, Key: key,
			Services: []Service{svcs["echo"], svcs["chat"]}, ServiceAddrs: map[string]netip.Addr{"chat": vipChat},
			Port: port, Hook: hook}.check()
		if err != nil {
			t.Fatal(err)
		}
		return newNode(cfg, hn), svcs
	}
	p.a, p.svcA = mk("a", "127.0.0.1", p.netA, p.hookA)
	p.b, p.svcB = mk("b", "127.0.0.2", p.netB, p.hookB)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i, n := range []*Node{p.a, p.b} {
		l := ln
		if i == 1 {
			if l, err = net.Listen("tcp4", "127.0.0.2:"+strconv.Itoa(int(port))); err != nil {
				t.Fatal(err)
			}
		}
		wg.Add(1)
		go func() { defer wg.Done(); n.ServeListener(ctx, l) }()
	}
	if err := p.a.TakeVIP(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pair) handOff(t *testing.T, opts *Options) (*Report, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.a.HandOff(ctx, netip.MustParseAddr("127.0.0.2"), opts)
}

func TestHandOffMovesAddressesWithoutRoot(t *testing.T) {
	p := newPair(t)
	rep, err := p.handOff(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	both := []netip.Addr{vipEcho, vipChat}
	if got := p.netB.holding(); !slices.Equal(got, both) || len(p.netA.holding()) != 0 {
		t.Fatalf("after the hand-off a holds %v, b holds %v; want b both", p.netA.holding(), got)
	}
	if !slices.Equal(rep.Services, []string{"echo", "chat"}) || !slices.Equal(rep.Addrs, both) || rep.To != "b" || !rep.Committed {
		t.Errorf("report %+v", rep)
	}
	if len(p.netB.announced) != 2 {
		t.Errorf("b announced %v, want both addresses", p.netB.announced)
	}
	for _, c := range p.netA.catchers {
		if !c.marked || c.forwarded.String() != p.netB.mac.String() {
			t.Errorf("a's catcher of %v: marked %v, forwarded to %v; want marked, to b's MAC", c.addr, c.marked, c.forwarded)
		}
	}
	for name, s := range p.svcA {
		if q, st, _ := s.counts(); q != 1 || st != 1 {
			t.Errorf("a's %s: quiesced %d, settled %d; want 1 and 1", name, q, st)
		}
		if _, _, ad := p.svcB[name].counts(); ad != 1 || string(p.svcB[name].adopted) != "state of "+name {
			t.Errorf("b's %s adopted %d times, shared %q", name, ad, p.svcB[name].adopted)
		}
	}
}

// TestRollbackAtEachStepWithoutRoot fails each step before the commit, on
// the source and on the target: a gets both addresses back (announced
// again if it had let them go), every catcher stops, each service is
// settled once with nothing moved, and b holds and adopts nothing.
func TestRollbackAtEachStepWithoutRoot(t *testing.T) {
	type tc struct {
		side string
		step Step
	}
	var cases []tc
	for _, s := range Steps()[:slices.Index(Steps(), StepAnnounce)+1] {
		cases = append(cases, tc{"a", s})
	}
	cases = append(cases, tc{"b", StepTargetPrepare}, tc{"b", StepTargetRestore})
	for _, c := range cases {
		t.Run(c.side+"/"+string(c.step), func(t *testing.T) {
			p := newPair(t)
			hook := p.hookA
			if c.side == "b" {
				hook = p.hookB
			}
			hook.set(c.step)
			_, err := p.handOff(t, nil)
			var he *Error
			if !errors.As(err, &he) || !he.RolledBack || !strings.Contains(err.Error(), "injected") {
				t.Fatalf("want a rolled-back failure naming the fault, got %v", err)
			}
			both := []netip.Addr{vipEcho, vipChat}
			if got := p.netA.holding(); !slices.Equal(got, both) {
				t.Errorf("a holds %v after the rollback, want both", got)
			}
			if got := p.netB.holding(); len(got) != 0 {
				t.Errorf("b holds %v after the rollback", got)
			}
			released := slices.Index(Steps(), c.step) > slices.Index(Steps(), StepRelease) || c.step == "target-restore"
			if released && len(p.netA.announced) < 4 {
				t.Errorf("a announced %v: want both addresses again after taking them back", p.netA.announced)
			}
			for _, ct := range p.netA.catchers {
				if !ct.stopped || ct.forwarded != nil {
					t.Errorf("a's catcher of %v: stopped %v, forwarded %v", ct.addr, ct.stopped, ct.forwarded)
				}
			}
			for name, s := range p.svcA {
				if q, st, _ := s.counts(); st != q {
					t.Errorf("a's %s: quiesced %d, settled %d", name, q, st)
				}
				if _, _, ad := p.svcB[name].counts(); ad != 0 {
					t.Errorf("b's %s adopted after a rollback", name)
				}
			}
			// And the next hand-off goes through.
			hook.set("")
			if _, err := p.handOff(t, nil); err != nil {
				t.Fatalf("after the rollback: %v", err)
			}
		})
	}
}

// TestOneServiceWithoutRoot moves chat alone: echo is never paused and
// its address stays; a selection of an unknown service changes nothing.
func TestOneServiceWithoutRoot(t *testing.T) {
	p := newPair(t)
	if _, err := p.handOff(t, &Options{Services: []string{"nosuch"}}); !errors.Is(err, ErrNoService) || !strings.Contains(err.Error(), "echo, chat") {
		t.Fatalf("unknown service: %v", err)
	}
	rep, err := p.handOff(t, &Options{Services: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Services, []string{"chat"}) || !slices.Equal(p.netA.holding(), []netip.Addr{vipEcho}) ||
		!slices.Equal(p.netB.holding(), []netip.Addr{vipChat}) {
		t.Fatalf("chat alone: report %+v, a holds %v, b %v", rep, p.netA.holding(), p.netB.holding())
	}
	if q, _, _ := p.svcA["echo"].counts(); q != 0 {
		t.Errorf("echo was paused %d times while chat moved", q)
	}
	// Everything from a now moves what a holds: echo.
	if rep, err := p.handOff(t, nil); err != nil || !slices.Equal(rep.Services, []string{"echo"}) {
		t.Fatalf("everything from a: %+v, %v", rep, err)
	}
	if _, err := p.handOff(t, nil); err == nil || !strings.Contains(err.Error(), "nothing to hand off") {
		t.Fatalf("a hand-off from a node holding nothing: %v", err)
	}
}

// TestKeepAddressSkipsRelease: a hook that skips the release leaves the
// addresses on the source (the break-it toggle), and a target hook that
// skips the announce sends no gratuitous ARP.
func TestBreakItWithoutRoot(t *testing.T) {
	p := newPair(t)
	p.hookB.skip = "announce"
	if _, err := p.handOff(t, &Options{Hook: &stepFault{skip: "release"}}); err != nil {
		t.Fatal(err)
	}
	if len(p.netA.holding()) != 2 || len(p.netB.holding()) != 2 {
		t.Errorf("kept addresses: a %v, b %v; want both on both", p.netA.holding(), p.netB.holding())
	}
	if len(p.netB.announced) != 0 {
		t.Errorf("b announced %v with the announce skipped", p.netB.announced)
	}
}

// connService is a service with real connections (on loopback) that it
// lists when paused, keeping those named in keep.
type connService struct {
	idleService
	conns []*net.TCPConn
	keep  map[*net.TCPConn]string
	moved []bool // per connection, from Settle
}

func (s *connService) Quiesce(context.Context) (Paused, error) {
	s.mu.Lock()
	s.quiesced++
	s.mu.Unlock()
	return &connPause{s}, nil
}

type connPause struct{ s *connService }

func (p *connPause) Shared() []byte { return nil }
func (p *connPause) Conns() []PausedConn {
	var out []PausedConn
	for _, c := range p.s.conns {
		out = append(out, PausedConn{Conn: c, Stay: p.s.keep[c]})
	}
	return out
}
func (p *connPause) Settle(moved func(*net.TCPConn) bool) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.s.settled++
	p.s.moved = nil
	for _, c := range p.s.conns {
		p.s.moved = append(p.s.moved, moved(c))
	}
}

// loopConn connects to addr (on loopback) and returns the server's end.
func loopConn(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	ln, err := net.Listen("tcp4", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.(*net.TCPConn)
}

// TestWhatCannotMoveStaysWithoutRoot: a connection to the node's own
// address stays and the rest moves; a connection its service keeps holds
// its whole address here, with a reason, while the other address moves.
func TestWhatCannotMoveStaysWithoutRoot(t *testing.T) {
	p := newPair(t)
	keeper := &connService{idleService: idleService{name: "chat"}}
	direct := loopConn(t, "127.0.0.1") // the node's own address, not chat's
	onChat := loopConn(t, "127.0.0.3") // chat's address (below)
	keeper.conns = []*net.TCPConn{direct, onChat}
	keeper.keep = map[*net.TCPConn]string{onChat: "in the middle of a transaction"}
	chatAddr := netip.MustParseAddr("127.0.0.3")
	p.a.cfg.Services[1] = keeper
	p.a.cfg.ServiceAddrs = map[string]netip.Addr{"chat": chatAddr}
	p.b.cfg.ServiceAddrs = map[string]netip.Addr{"chat": chatAddr}
	p.netA.Remove(vipChat) // chat's address was another
	if err := p.a.TakeVIP(); err != nil {
		t.Fatal(err)
	}

	rep, err := p.handOff(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Services, []string{"echo"}) || !slices.Equal(p.netA.holding(), []netip.Addr{chatAddr}) {
		t.Fatalf("moved %v; a holds %v: want echo moved, chat's address kept", rep.Services, p.netA.holding())
	}
	why := map[string]string{}
	for _, s := range rep.Stayed {
		why[s.Local.Addr().String()] = s.Reason
	}
	if !strings.Contains(why["127.0.0.1"], "not on the service address 127.0.0.3") ||
		!strings.Contains(why["127.0.0.3"], "in the middle of a transaction") || len(rep.Stayed) != 2 {
		t.Errorf("stayed: %+v", rep.Stayed)
	}
	if _, st, _ := keeper.counts(); st != 1 || !slices.Equal(keeper.moved, []bool{false, false}) {
		t.Errorf("chat settled %d times, moved %v: want once, nothing moved", st, keeper.moved)
	}
	if _, _, ad := p.svcB["chat"].counts(); ad != 0 {
		t.Error("b adopted chat, which stayed")
	}
}

// TestTargetChecksSnapshotsWithoutRoot: a target whose service refuses
// the source's shared snapshot (SharedChecker) says so before the
// decision: that service's address stays on the source and is served on,
// the other service moves, and nothing is refused after the commit.
func TestTargetChecksSnapshotsWithoutRoot(t *testing.T) {
	p := newPair(t)
	p.svcB["chat"].mu.Lock()
	p.svcB["chat"].refuseShared = errors.New("version 9 of the snapshot is unknown here")
	p.svcB["chat"].mu.Unlock()
	rep, err := p.handOff(t, nil)
	if err != nil {
		t.Fatalf("a refused snapshot failed the whole hand-off: %v", err)
	}
	if !slices.Equal(p.netA.holding(), []netip.Addr{vipChat}) || !slices.Equal(p.netB.holding(), []netip.Addr{vipEcho}) {
		t.Fatalf("a holds %v, b holds %v: want chat's address on a, echo's on b", p.netA.holding(), p.netB.holding())
	}
	if !slices.Equal(rep.Services, []string{"echo"}) {
		t.Errorf("report says %v moved, want echo alone", rep.Services)
	}
	if _, _, ad := p.svcB["chat"].counts(); ad != 0 {
		t.Errorf("b's chat adopted a snapshot it refused")
	}
	if q, st, _ := p.svcA["chat"].counts(); q != 1 || st != 1 {
		t.Errorf("a's chat: quiesced %d, settled %d; want once each (resumed there)", q, st)
	}
}

// TestConfigRefusesAKeyTheChannelWould: the key is checked where it is
// given (NewNode), as the handshake checks it: exactly wire.KeySize bytes.
// A shorter or longer one once passed here and failed only at the first
// hand-off, differently on each side.
func TestConfigRefusesAKeyTheChannelWould(t *testing.T) {
	base := Config{Name: "a", Addr: netip.MustParseAddr("192.0.2.1"), Interface: "eth0", VIP: vipEcho}
	for _, n := range []int{0, 16, 31, 33, 64} {
		cfg := base
		cfg.Key = make([]byte, n)
		if _, err := cfg.check(); err == nil || !strings.Contains(err.Error(), "32 bytes") {
			t.Errorf("a key of %d bytes: %v, want a refusal naming 32 bytes", n, err)
		}
	}
	cfg := base
	cfg.Key = make([]byte, 32)
	if _, err := cfg.check(); err != nil {
		t.Errorf("a key of 32 bytes: %v", err)
	}
}
