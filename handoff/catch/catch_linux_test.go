package catch

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"github.com/sockshift/sockshift/handoff/nstest"
	"golang.org/x/sys/unix"
)

const (
	labVIP    = "198.51.100.100"
	labPort   = 7
	labClient = "198.51.100.10"
	labA      = "198.51.100.1"
	labT      = "198.51.100.2"
)

// lab is one L2 segment (nstest.Segment) with three hosts on it:
// the client c, the source a (which holds the VIP at first) and the target
// t, each on its own eth0.
type lab struct {
	c, a, t          string
	macC, macA, macT net.HardwareAddr
}

func newLab(t *testing.T) *lab {
	t.Helper()
	hosts := nstest.Segment(t, "c", labClient+"/24", labA+"/24", labT+"/24")
	l := &lab{c: hosts[0], a: hosts[1], t: hosts[2]}
	nstest.Run(t, "ip", "-n", l.a, "addr", "add", labVIP+"/32", "dev", "eth0")
	l.macC, l.macA, l.macT = linkMAC(t, l.c), linkMAC(t, l.a), linkMAC(t, l.t)
	return l
}

func linkMAC(t *testing.T, ns string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := nstest.Do(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// moveVIP takes the VIP off the source (as at the freeze) and, if toTarget,
// puts it on the target (as at the restore).
func (l *lab) moveVIP(t *testing.T, toTarget bool) {
	t.Helper()
	nstest.Run(t, "ip", "-n", l.a, "addr", "del", labVIP+"/32", "dev", "eth0")
	if toTarget {
		nstest.Run(t, "ip", "-n", l.t, "addr", "add", labVIP+"/32", "dev", "eth0")
	}
}

// pin makes the client send everything for the VIP to mac, whatever ARP
// says: the source's MAC until the target's announcement is heeded.
func (l *lab) pin(t *testing.T, mac net.HardwareAddr) {
	t.Helper()
	nstest.Run(t, "ip", "-n", l.c, "neigh", "replace", labVIP, "lladdr", mac.String(), "dev", "eth0", "nud", "permanent")
}

func arm(t *testing.T, ns string, cfg *Config) *Catcher {
	t.Helper()
	var c *Catcher
	if err := nstest.Do(ns, func() (err error) { c, err = Arm("eth0", netip.MustParseAddr(labVIP), cfg); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(); <-c.Done() })
	return c
}

// counter reads one of a namespace's TCP counters: table "Tcp" lives in
// /proc/net/snmp, "TcpExt" in /proc/net/netstat.
func counter(t *testing.T, ns, table, name string) int {
	t.Helper()
	file := "/proc/net/snmp"
	if table == "TcpExt" {
		file = "/proc/net/netstat"
	}
	lines := strings.Split(nstest.Exec(t, ns, "cat", file), "\n")
	for i := 0; i+1 < len(lines); i++ {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != table+":" || len(vals) != len(keys) || vals[0] != table+":" {
			continue
		}
		for j, k := range keys {
			if k == name {
				v, err := strconv.Atoi(vals[j])
				if err != nil {
					t.Fatalf("%s %s: %v", file, name, err)
				}
				return v
			}
		}
	}
	t.Fatalf("no %s %s in %s", table, name, file)
	return 0
}

// A client's SYN that reaches the source after the VIP moved is caught
// there, and once forwarded the target accepts the connection: the client
// never retransmits (its first SYN retransmission would come after 1 s),
// and its handshake ACK and first data, still sent to the source, are
// forwarded as stragglers during the grace period.
func TestForwardedSYNIsAccepted(t *testing.T) {
	l := newLab(t)
	l.pin(t, l.macA)
	l.moveVIP(t, false)
	c := arm(t, l.a, &Config{Ports: []uint16{labPort}, Grace: 2 * time.Second})
	nstest.Run(t, "ip", "-n", l.t, "addr", "add", labVIP+"/32", "dev", "eth0")
	var ln *net.TCPListener
	if err := nstest.Do(l.t, func() error {
		nl, err := net.Listen("tcp4", net.JoinHostPort(labVIP, strconv.Itoa(labPort)))
		if err == nil {
			ln = nl.(*net.TCPListener)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	retransC, retransT := counter(t, l.c, "Tcp", "RetransSegs"), counter(t, l.t, "Tcp", "RetransSegs")

	type dialed struct {
		conn net.Conn
		err  error
	}
	dial := make(chan dialed, 1)
	go func() {
		var d dialed
		d.err = nstest.Do(l.c, func() error {
			d.conn, d.err = net.DialTimeout("tcp4", net.JoinHostPort(labVIP, strconv.Itoa(labPort)), 10*time.Second)
			if d.err == nil {
				_, d.err = d.conn.Write([]byte("hello"))
			}
			return d.err
		})
		dial <- d
	}()
	waitFor(t, "the SYN caught on the source", func() bool { return c.Stats().Caught >= 1 })
	st, err := c.Forward(l.macT)
	if err != nil {
		t.Fatal(err)
	}
	if st.Forwarded < 1 {
		t.Fatalf("Forward stats %+v; want the SYN forwarded", st)
	}

	_ = ln.SetDeadline(time.Now().Add(10 * time.Second))
	srv, err := ln.Accept()
	if err != nil {
		t.Fatalf("target's accept: %v", err)
	}
	defer srv.Close()
	_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(srv, got); err != nil || string(got) != "hello" {
		t.Fatalf("target read %q, %v; want hello", got, err)
	}
	d := <-dial
	if d.err != nil {
		t.Fatalf("client: %v", d.err)
	}
	defer d.conn.Close()
	if got := srv.RemoteAddr().(*net.TCPAddr).IP.String(); got != labClient {
		t.Errorf("target accepted from %s; want the client %s", got, labClient)
	}

	if n := counter(t, l.c, "Tcp", "RetransSegs") - retransC; n != 0 {
		t.Errorf("client retransmitted %d segments; want 0 (the caught SYN, ACK and data were delivered)", n)
	}
	if n := counter(t, l.t, "Tcp", "RetransSegs") - retransT; n != 0 {
		t.Errorf("target retransmitted %d segments; want 0", n)
	}
	c.Stop() // ends the grace period early
	waitDone(t, c)
	if st := c.Stats(); st.Forwarded < 3 || st.Forwarded != st.Caught || st.Dropped != 0 {
		t.Errorf("final stats %+v; want SYN, ACK and data caught and forwarded, none dropped", st)
	}
}

// pattern is the byte at offset i of the test stream.
func pattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((off + i) * 7 / 251)
	}
	return b
}

// A bulk write that reaches the source arrives there as GSO super-frames
// with unfinished checksums; re-sent with their virtio header, the target's
// TCP takes every byte, in order, and the client never needs a
// retransmission timeout.
func TestForwardedStream(t *testing.T) {
	const warm, burst = 4 << 20, 256 << 10
	l := newLab(t)
	l.moveVIP(t, true)
	l.pin(t, l.macT)

	var ln net.Listener
	if err := nstest.Do(l.t, func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(labVIP, strconv.Itoa(labPort)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var cl net.Conn
	if err := nstest.Do(l.c, func() (err error) {
		cl, err = net.DialTimeout("tcp4", net.JoinHostPort(labVIP, strconv.Itoa(labPort)), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	_ = srv.SetReadDeadline(time.Now().Add(20 * time.Second))

	var mu sync.Mutex
	received := 0
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		off := 0
		for off < warm+burst {
			n, err := srv.Read(buf)
			if !bytes.Equal(buf[:n], pattern(off, n)) {
				readErr <- fmt.Errorf("bytes %d..%d differ from what the client sent", off, off+n)
				return
			}
			off += n
			mu.Lock()
			received = off
			mu.Unlock()
			if err != nil {
				readErr <- fmt.Errorf("after %d bytes: %w", off, err)
				return
			}
		}
		readErr <- nil
	}()
	// Grow the congestion window, so the burst leaves in large super-frames.
	if _, err := cl.Write(pattern(0, warm)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the warm-up received", func() bool { mu.Lock(); defer mu.Unlock(); return received == warm })

	timeouts := counter(t, l.c, "TcpExt", "TCPTimeouts")
	c := arm(t, l.a, &Config{Ports: []uint16{labPort}})
	l.pin(t, l.macA) // the client still believes the source holds the VIP
	if _, err := cl.Write(pattern(warm, burst)); err != nil {
		t.Fatal(err)
	}
	// Wait until the client has sent all it can without an ACK.
	last, since := 0, time.Now()
	waitFor(t, "the burst caught", func() bool {
		if b := c.Stats().Bytes; b != last {
			last, since = b, time.Now()
		}
		return last > 0 && time.Since(since) > 20*time.Millisecond
	})
	c.mu.Lock()
	largest := 0
	for _, f := range c.kept {
		largest = max(largest, len(f)-vnetHdrLen)
	}
	c.mu.Unlock()
	if largest <= 1514 {
		t.Errorf("largest caught frame %d bytes; want a GSO super-frame above the 1514-byte MTU", largest)
	}
	l.pin(t, l.macT) // the target's announcement is heeded
	st, err := c.Forward(l.macT)
	if err != nil {
		t.Fatal(err)
	}
	if st.Forwarded == 0 || st.Dropped != 0 {
		t.Fatalf("Forward stats %+v; want frames forwarded, none dropped", st)
	}
	if err := <-readErr; err != nil {
		t.Fatalf("target's read: %v", err)
	}
	if n := counter(t, l.c, "TcpExt", "TCPTimeouts") - timeouts; n != 0 {
		t.Errorf("client had %d retransmission timeouts; want 0", n)
	}
	t.Logf("caught %d frames, %d bytes, largest %d; forwarded %d", st.Caught, st.Bytes, largest, st.Forwarded)
	waitDone(t, c)
}

// inject sends raw Ethernet frames from the client's interface.
func inject(t *testing.T, ns string, frames ...[]byte) {
	t.Helper()
	err := nstest.Do(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, nil)
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, f := range frames {
			if _, err := conn.WriteTo(f, &packet.Addr{HardwareAddr: f[:6]}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sniffer captures, on a host's eth0, the IPv4 frames carrying a test
// marker (source port 40000, as frameSpec builds them), in either
// direction, from the Ethernet source src if it is not nil. (The bridge
// floods a frame to every port until it has learnt where its destination
// is, so a host may see frames that were never sent to it.)
type sniffer struct {
	mu     sync.Mutex
	frames [][]byte
}

func sniff(t *testing.T, ns string, src net.HardwareAddr) *sniffer {
	t.Helper()
	var conn *packet.Conn
	err := nstest.Do(ns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		// ETH_P_ALL: the kernel shows transmitted frames only to such
		// sockets.
		conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &sniffer{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= ethHdrLen+24 && binary.BigEndian.Uint16(buf[ethHdrLen+20:]) == 40000 &&
				(src == nil || bytes.Equal(buf[6:12], src)) {
				s.mu.Lock()
				s.frames = append(s.frames, append([]byte(nil), buf[:n]...))
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return s
}

func (s *sniffer) ids() []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []uint16
	for _, f := range s.frames {
		ids = append(ids, binary.BigEndian.Uint16(f[ethHdrLen+4:]))
	}
	return ids
}

func (s *sniffer) count() int { return len(s.ids()) }

// spec builds a frame from the client to the source's MAC for the VIP on
// the caught port, with a marker id.
func (l *lab) spec(id uint16) frameSpec {
	return frameSpec{dst: l.macA, src: l.macC, etype: 0x0800, ipDst: netip.MustParseAddr(labVIP), proto: 6, dport: labPort, id: id}
}

// Only TCP frames for the VIP, to our MAC and (if set) the given ports are
// caught; frames the host sends, including a catcher's re-sends, are not.
func TestFilterInKernel(t *testing.T) {
	l := newLab(t)
	l.moveVIP(t, false)
	onA := sniff(t, l.a, nil)
	ports := arm(t, l.a, &Config{Ports: []uint16{labPort}})
	all := arm(t, l.a, nil)

	mod := func(id uint16, f func(*frameSpec)) []byte { s := l.spec(id); f(&s); return s.bytes() }
	inject(t, l.c,
		l.spec(1).bytes(),
		mod(2, func(s *frameSpec) { s.dport = labPort + 1 }),
		mod(3, func(s *frameSpec) { s.ipDst = netip.MustParseAddr(labA) }),
		mod(4, func(s *frameSpec) { s.proto = 17 }),
		// The bridge has never seen this MAC, so it floods the frame to
		// the source too, where only the MAC check keeps it out.
		mod(5, func(s *frameSpec) { s.dst = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99} }),
		l.spec(6).bytes(),
	)
	waitFor(t, "all six frames on the source's eth0", func() bool { return onA.count() >= 6 })
	waitFor(t, "the port catcher's frames", func() bool { return ports.Stats().Caught >= 2 })
	waitFor(t, "the all-ports catcher's frames", func() bool { return all.Stats().Caught >= 3 })
	time.Sleep(50 * time.Millisecond) // let a wrongly passed frame show up
	if got := keptIDs(ports); !equalIDs(got, []uint16{1, 6}) {
		t.Errorf("port %d catcher kept ids %v; want [1 6]", labPort, got)
	}
	if got := keptIDs(all); !equalIDs(got, []uint16{1, 2, 6}) {
		t.Errorf("all-ports catcher kept ids %v; want [1 2 6]", got)
	}

	// Re-sent to the source's own MAC, the frames match every test of the
	// filter, yet the other catcher must not catch them again. The sniffer
	// proves they were sent.
	st, err := ports.Forward(l.macA)
	if err != nil || st.Forwarded != 2 {
		t.Fatalf("Forward: %+v, %v; want 2 forwarded", st, err)
	}
	waitFor(t, "the re-sent frames on the source's eth0", func() bool { return onA.count() >= 8 })
	time.Sleep(50 * time.Millisecond)
	if st := all.Stats(); st.Caught != 3 {
		t.Errorf("all-ports catcher caught %d frames after the re-send; want still 3", st.Caught)
	}
	if st := ports.Stats(); st.Caught != 2 {
		t.Errorf("forwarding catcher caught %d frames after its re-send; want still 2", st.Caught)
	}
}

func keptIDs(c *Catcher) []uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []uint16
	for _, f := range c.kept {
		ids = append(ids, binary.BigEndian.Uint16(f[vnetHdrLen+ethHdrLen+4:]))
	}
	return ids
}

// Beyond MaxBytes frames are dropped and counted; the kept ones reach the
// target in order, addressed from the source to the target, otherwise
// byte for byte as the client sent them.
func TestBoundInKernel(t *testing.T) {
	l := newLab(t)
	l.moveVIP(t, false)
	onT := sniff(t, l.t, l.macA)
	size := len(l.spec(1).bytes())
	c := arm(t, l.a, &Config{MaxBytes: 2*size + 1, Grace: time.Millisecond})
	sent := [][]byte{l.spec(1).bytes(), l.spec(2).bytes(), l.spec(3).bytes()}
	inject(t, l.c, sent...)
	waitFor(t, "three frames caught", func() bool { return c.Stats().Caught == 3 })
	st, err := c.Forward(l.macT)
	if err != nil {
		t.Fatal(err)
	}
	if st.Caught != 3 || st.Forwarded != 2 || st.Dropped != 1 || st.Bytes != 2*size {
		t.Fatalf("stats %+v; want 3 caught, 2 forwarded, 1 dropped, %d bytes", st, 2*size)
	}
	waitFor(t, "two frames on the target", func() bool { return onT.count() >= 2 })
	waitDone(t, c)
	time.Sleep(50 * time.Millisecond)
	onT.mu.Lock()
	defer onT.mu.Unlock()
	if len(onT.frames) != 2 {
		t.Fatalf("target saw %d frames; want 2", len(onT.frames))
	}
	for i, got := range onT.frames {
		want := append([]byte(nil), sent[i]...)
		copy(want[0:6], l.macT)
		copy(want[6:12], l.macA)
		if !bytes.Equal(got, want) {
			t.Errorf("frame %d on the target\n%x\nwant\n%x", i+1, got, want)
		}
	}
}

// Stop drops what was kept and closes; nothing reaches the target.
func TestStopInKernel(t *testing.T) {
	l := newLab(t)
	l.moveVIP(t, false)
	onT := sniff(t, l.t, l.macA)
	c := arm(t, l.a, nil)
	inject(t, l.c, l.spec(1).bytes(), l.spec(2).bytes())
	waitFor(t, "two frames caught", func() bool { return c.Stats().Caught == 2 })
	c.Stop()
	waitDone(t, c)
	if _, err := c.Forward(l.macT); err == nil {
		t.Error("Forward after Stop succeeded")
	}
	inject(t, l.c, l.spec(3).bytes())
	time.Sleep(100 * time.Millisecond)
	if st := c.Stats(); st.Caught != 2 || st.Forwarded != 0 {
		t.Errorf("stats after Stop %+v; want 2 caught, none forwarded", st)
	}
	if n := onT.count(); n != 0 {
		t.Errorf("target saw %d frames after Stop; want none", n)
	}
}

func TestArmErrors(t *testing.T) {
	ns := nstest.NewNS(t, "cerr")
	vip := netip.MustParseAddr(labVIP)
	for _, tc := range []struct {
		ifname string
		vip    netip.Addr
		cfg    *Config
		want   string
	}{
		{"nosuch0", vip, nil, "nosuch0"},
		{"lo", vip, nil, "not an Ethernet interface"},
		{"lo", netip.MustParseAddr("2001:db8::1"), nil, "not an IPv4 address"},
		{"lo", vip, &Config{MaxBytes: -1}, "MaxBytes"},
	} {
		err := nstest.Do(ns, func() error { _, err := Arm(tc.ifname, tc.vip, tc.cfg); return err })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Arm(%s, %v, %+v) error = %v; want one saying %q", tc.ifname, tc.vip, tc.cfg, err, tc.want)
		}
	}
}
