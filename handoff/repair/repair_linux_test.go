package repair

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockshift/sockshift/handoff/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// stream is a reproducible pseudo-random byte stream, so a reader can tell
// any lost, repeated or reordered byte.
func stream(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

// inNS runs fn inside ns, failing t on error.
func inNS(t testing.TB, ns string, fn func() error) {
	t.Helper()
	if err := nstest.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// restoreHeard restores s in ns, then lifts the test's firewall (table
// inet t) so the client is heard again, and activates the socket.
func restoreHeard(t *testing.T, ns string, s *State) *net.TCPConn {
	t.Helper()
	var r *Restored
	inNS(t, ns, func() (err error) { r, err = Restore(s, nil); return err })
	nstest.Exec(t, ns, "nft", "delete", "table", "inet", "t")
	nc, err := r.Activate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// firewall gives ns the test's nftables table (inet t, which restoreHeard
// lifts, removed at cleanup): one chain, c, on hook ("input" or "output"),
// holding rules, each as nft reads it ("tcp sport 80 drop").
func firewall(t *testing.T, ns, hook string, rules ...string) {
	t.Helper()
	nstest.Exec(t, ns, "nft", "add", "table", "inet", "t")
	t.Cleanup(func() {
		nstest.Do(ns, func() error { return exec.Command("nft", "delete", "table", "inet", "t").Run() })
	})
	nstest.Exec(t, ns, "nft", "add", "chain", "inet", "t", "c", "{ type filter hook "+hook+" priority 0; }")
	for _, r := range rules {
		nstest.Exec(t, ns, "nft", "add", "rule", "inet", "t", "c", r)
	}
}

type pair struct {
	ln             *net.TCPListener
	client, server *net.TCPConn
}

// newPair connects a client to a server on 127.0.0.1 inside ns. rcvbuf, if
// not zero, is set on both sockets before the handshake, so each side can
// take megabytes without reading (and scales its window for it).
func newPair(t testing.TB, ns string, rcvbuf int) *pair {
	t.Helper()
	p := &pair{}
	inNS(t, ns, func() error {
		setRcvbuf := func(_, _ string, c syscall.RawConn) error {
			if rcvbuf == 0 {
				return nil
			}
			var serr error
			err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
			return errors.Join(err, serr)
		}
		lc := net.ListenConfig{Control: setRcvbuf}
		l, err := lc.Listen(t.Context(), "tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		p.ln = l.(*net.TCPListener)
		d := net.Dialer{Control: setRcvbuf}
		c, err := d.Dial("tcp4", p.ln.Addr().String())
		if err != nil {
			return err
		}
		p.client = c.(*net.TCPConn)
		s, err := p.ln.AcceptTCP()
		p.server = s
		return err
	})
	t.Cleanup(func() {
		p.ln.Close()
		p.client.Close()
		p.server.Close()
	})
	return p
}

// sockInt reads an int socket option or ioctl of c.
func sockInt(t testing.TB, c *net.TCPConn, get func(fd int) (int, error)) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = get(int(fd)) }); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

func ioctl(req uint) func(int) (int, error) {
	return func(fd int) (int, error) { return unix.IoctlGetInt(fd, req) }
}

func opt(level, o int) func(int) (int, error) {
	return func(fd int) (int, error) { return unix.GetsockoptInt(fd, level, o) }
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStable waits until f returns the same value for 100 ms in a row and
// cond holds for it.
func waitStable(t testing.TB, what string, f func() string, cond func() bool) {
	t.Helper()
	last, since := "", time.Now()
	waitFor(t, what, 20*time.Second, func() bool {
		v := f()
		if v != last {
			last, since = v, time.Now()
			return false
		}
		return cond() && time.Since(since) > 100*time.Millisecond
	})
}

// readVerify reads len(want) bytes from c and compares them with want.
func readVerify(c net.Conn, want []byte, timeout time.Duration) error {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	got := make([]byte, len(want))
	n, err := io.ReadFull(c, got)
	if i := firstDiff(got[:n], want[:n]); i >= 0 {
		return fmt.Errorf("byte %d of %d differs", i, len(want))
	}
	if err != nil {
		return fmt.Errorf("read %d of %d bytes: %w", n, len(want), err)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// pingPong proves a connection still works both ways.
func pingPong(t testing.TB, a, b net.Conn, rounds int) {
	t.Helper()
	for i := range rounds {
		msg := stream(uint64(1000+i), 1000+i*37)
		errc := make(chan error, 1)
		go func() { _, err := a.Write(msg); errc <- err }()
		if err := readVerify(b, msg, 10*time.Second); err != nil {
			t.Fatalf("round %d a->b: %v", i, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		go func() { _, err := b.Write(msg); errc <- err }()
		if err := readVerify(a, msg, 10*time.Second); err != nil {
			t.Fatalf("round %d b->a: %v", i, err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// takeOut freezes c, dumps it and closes it silently: the source's part.
func takeOut(t testing.TB, c *net.TCPConn) *State {
	t.Helper()
	f, err := Freeze(c)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

// move takes c out and rebuilds it in ns.
func move(t testing.TB, ns string, c *net.TCPConn, opts *RestoreOptions) (*State, *net.TCPConn) {
	t.Helper()
	s := takeOut(t, c)
	var err error
	var r *Restored
	inNS(t, ns, func() error { r, err = Restore(s, opts); return err })
	nc, err := r.Activate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if _, err := nc.Write(s.Unsent); err != nil {
		t.Fatal(err)
	}
	return s, nc
}

var nftPackets = regexp.MustCompile(`packets (\d+)`)

// TestRestoreCarriesEveryByte moves a connection with bytes in all three
// queues: unread by the server, sent but unacked, and never sent.
func TestRestoreCarriesEveryByte(t *testing.T) {
	ns := nstest.NewNS(t, "rpall")
	nstest.NeedTool(t, "nft", "nftables")
	p := newPair(t, ns, 4<<20)

	const inQueue = 1 << 20 // client bytes the server app leaves unread
	cs := stream(1, 3<<20)  // client -> server
	ss := stream(2, 16<<20) // server -> client

	// 1. The server stops reading; the client's bytes sit in its receive
	// queue, all acknowledged.
	if _, err := p.client.Write(cs[:inQueue]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "client bytes in the server's receive queue", 20*time.Second, func() bool {
		return sockInt(t, p.server, ioctl(unix.SIOCINQ)) == inQueue && sockInt(t, p.client, ioctl(unix.SIOCOUTQ)) == 0
	})

	// 2. The client stops hearing the server: its segments stay unacked,
	// the rest of what the server app writes stays unsent. A counter
	// before the drop catches any FIN or RST from the server.
	cport := strconv.Itoa(p.client.LocalAddr().(*net.TCPAddr).Port)
	sport := strconv.Itoa(p.server.LocalAddr().(*net.TCPAddr).Port)
	firewall(t, ns, "input")
	nstest.Exec(t, ns, "nft", "add", "counter", "inet", "t", "finrst")
	nstest.Exec(t, ns, "nft", "add", "rule", "inet", "t", "c", "tcp", "sport", sport, "tcp", "flags", "&", "(fin|rst)", "!=", "0", "counter", "name", "finrst")
	nstest.Exec(t, ns, "nft", "add", "rule", "inet", "t", "c", "tcp", "dport", cport, "drop")

	written := make(chan int, 1)
	go func() {
		n, _ := p.server.Write(ss) // blocks until the frozen socket is closed
		written <- n
	}()
	queues := func() string {
		return fmt.Sprint(sockInt(t, p.server, ioctl(unix.SIOCOUTQ)), sockInt(t, p.server, ioctl(unix.SIOCOUTQNSD)))
	}
	waitStable(t, "server send queue to fill", queues, func() bool {
		outq, nsd := sockInt(t, p.server, ioctl(unix.SIOCOUTQ)), sockInt(t, p.server, ioctl(unix.SIOCOUTQNSD))
		return nsd > 0 && outq > nsd
	})

	// 3. Freeze and dump.
	f, err := Freeze(p.server)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dumped %v (mss %d, wscale %d/%d, sack %v, ts %v, bufs %d/%d)", s, s.MSS, s.SndWscale, s.RcvWscale,
		s.SACK, s.Timestamps, s.SndBuf, s.RcvBuf)
	if len(s.RecvQueue) == 0 || len(s.Unacked) == 0 || len(s.Unsent) == 0 {
		t.Fatalf("want all three queues non-empty, got %v", s)
	}
	if !bytes.Equal(s.RecvQueue, cs[:inQueue]) {
		t.Fatal("dumped receive queue is not what the client sent")
	}
	if s.Local != p.server.LocalAddr().(*net.TCPAddr).AddrPort() || s.Remote != p.client.LocalAddr().(*net.TCPAddr).AddrPort() {
		t.Fatalf("dumped addresses %v->%v", s.Local, s.Remote)
	}

	// 4. Commit on the source: close silently.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	n := <-written
	sendq := append(append([]byte(nil), s.Unacked...), s.Unsent...)
	if n < len(sendq) || !bytes.Equal(sendq, ss[n-len(sendq):n]) {
		t.Fatalf("dumped send queue (%d bytes) is not the tail of the %d bytes written", len(sendq), n)
	}
	p.client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := p.client.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client read after the silent close: %v, want a timeout", err)
	}
	p.client.SetReadDeadline(time.Time{})
	if m := nftPackets.FindStringSubmatch(nstest.Exec(t, ns, "nft", "list", "counter", "inet", "t", "finrst")); m == nil || m[1] != "0" {
		t.Fatalf("server sent FIN or RST on close in repair mode: %v", m)
	}

	// 5. Restore, let the client hear again, activate, write Unsent.
	nc := restoreHeard(t, ns, s)
	if got, want := nc.LocalAddr().String(), p.server.LocalAddr().String(); got != want {
		t.Fatalf("restored local address %s, want %s", got, want)
	}

	// 6. Every byte, in order, both ways; then more.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Add(4)
	go func() { // restored server writes the rest of its stream
		defer wg.Done()
		if _, err := nc.Write(s.Unsent); err != nil {
			errs <- fmt.Errorf("server write unsent: %w", err)
			return
		}
		if _, err := nc.Write(ss[n:]); err != nil {
			errs <- fmt.Errorf("server write: %w", err)
		}
	}()
	go func() { // restored server reads the whole client stream
		defer wg.Done()
		if err := readVerify(nc, cs, 60*time.Second); err != nil {
			errs <- fmt.Errorf("server read: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if _, err := p.client.Write(cs[inQueue:]); err != nil {
			errs <- fmt.Errorf("client write: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := readVerify(p.client, ss, 60*time.Second); err != nil {
			errs <- fmt.Errorf("client read: %w", err)
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	pingPong(t, p.client, nc, 5)
}

// TestThaw freezes and dumps a busy connection, then rolls back: the
// connection carries on, every byte.
func TestThaw(t *testing.T) {
	ns := nstest.NewNS(t, "rpthaw")
	p := newPair(t, ns, 0)
	cs, ss := stream(3, 64<<10), stream(4, 4<<20)

	if _, err := p.client.Write(cs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "client bytes at the server", 10*time.Second, func() bool {
		return sockInt(t, p.server, ioctl(unix.SIOCINQ)) == len(cs)
	})
	written := make(chan error, 1)
	go func() { _, err := p.server.Write(ss); written <- err }()
	waitStable(t, "server send queue to fill", func() string {
		return fmt.Sprint(sockInt(t, p.server, ioctl(unix.SIOCOUTQ)))
	}, func() bool { return sockInt(t, p.server, ioctl(unix.SIOCOUTQ)) > 0 })

	f, err := Freeze(p.server)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.RecvQueue, cs) || len(s.Unacked)+len(s.Unsent) == 0 {
		t.Fatalf("dump %v: want the client's bytes and a non-empty send queue", s)
	}
	if err := f.Thaw(); err != nil {
		t.Fatal(err)
	}
	var se *Error
	if err := f.Close(); !errors.As(err, &se) || se.Socket != Normal {
		t.Fatalf("Close after Thaw: %v, want an *Error with Socket normal", err)
	}

	if err := readVerify(p.server, cs, 10*time.Second); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if err := readVerify(p.client, ss, 30*time.Second); err != nil {
		t.Fatalf("client read: %v", err)
	}
	if err := <-written; err != nil {
		t.Fatalf("server write: %v", err)
	}
	pingPong(t, p.client, p.server, 5)
}

// TestBufferSizes moves a connection five times in a row: the buffer sizes
// come back as dumped and never grow.
func TestBufferSizes(t *testing.T) {
	ns := nstest.NewNS(t, "rpbuf")
	p := newPair(t, ns, 0)
	pingPong(t, p.client, p.server, 3) // let autotuning move the sizes
	c := p.server
	var prev *State
	for i := range 5 {
		s, nc := move(t, ns, c, nil)
		if prev != nil && (s.SndBuf != prev.SndBuf || s.RcvBuf != prev.RcvBuf) {
			t.Fatalf("move %d: buffers %d/%d, were %d/%d before", i, s.SndBuf, s.RcvBuf, prev.SndBuf, prev.RcvBuf)
		}
		snd := uint32(sockInt(t, nc, opt(unix.SOL_SOCKET, unix.SO_SNDBUF)))
		rcv := uint32(sockInt(t, nc, opt(unix.SOL_SOCKET, unix.SO_RCVBUF)))
		// The kernel stores only doubled sizes: an odd (autotuned) size
		// comes back one byte smaller, never larger.
		if snd != s.SndBuf&^1 || rcv != s.RcvBuf&^1 {
			t.Fatalf("move %d: restored buffers %d/%d, dumped %d/%d", i, snd, rcv, s.SndBuf, s.RcvBuf)
		}
		pingPong(t, p.client, nc, 2)
		c, prev = nc, s
		prev.SndBuf, prev.RcvBuf = snd, rcv
	}
}

// TestTimestamp checks the restored timestamp clock runs ahead by the
// offset and keeps its unit (the low bit).
func TestTimestamp(t *testing.T) {
	ns := nstest.NewNS(t, "rpts")
	check := func(t *testing.T, p *pair, opts *RestoreOptions, off uint32, wantUsec bool) {
		pingPong(t, p.client, p.server, 1)
		s, nc := move(t, ns, p.server, opts)
		if !s.Timestamps {
			t.Fatal("timestamps not negotiated")
		}
		if usec := s.Timestamp&1 != 0; usec != wantUsec {
			t.Fatalf("dumped timestamp %#x: usec mode %v, want %v", s.Timestamp, usec, wantUsec)
		}
		got := uint32(sockInt(t, nc, opt(unix.IPPROTO_TCP, unix.TCP_TIMESTAMP)))
		if int32(got-(s.Timestamp+off)) < 0 {
			t.Fatalf("restored timestamp %d behind dumped %d + offset %d", got, s.Timestamp, off)
		}
		if got&1 != s.Timestamp&1 {
			t.Fatalf("restored timestamp %#x lost the unit bit of %#x", got, s.Timestamp)
		}
		pingPong(t, p.client, nc, 2)
	}
	t.Run("ms default", func(t *testing.T) { check(t, newPair(t, ns, 0), nil, 2, false) })
	t.Run("ms odd offset", func(t *testing.T) {
		check(t, newPair(t, ns, 0), &RestoreOptions{TimestampOffset: 5001}, 5000, false)
	})
	t.Run("usec default", func(t *testing.T) {
		// Microsecond timestamps are a route feature (kernels >= 6.7).
		// The connection runs over the local route of an address on lo,
		// so that is the route that gets the feature (iproute2 before 6.7
		// cannot set it; netlink can).
		nstest.Exec(t, ns, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")
		p := &pair{}
		inNS(t, ns, func() error {
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return err
			}
			ip := net.IPv4(198, 51, 100, 1).To4()
			err = netlink.RouteReplace(&netlink.Route{
				LinkIndex: lo.Attrs().Index, Dst: &net.IPNet{IP: ip, Mask: net.CIDRMask(32, 32)}, Src: ip,
				Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST,
				Protocol: unix.RTPROT_KERNEL, Features: unix.RTAX_FEATURE_TCP_USEC_TS,
			})
			if err != nil {
				return fmt.Errorf("route with tcp_usec_ts: %w", err)
			}
			l, err := net.Listen("tcp4", "198.51.100.1:0")
			if err != nil {
				return err
			}
			p.ln = l.(*net.TCPListener)
			c, err := net.Dial("tcp4", p.ln.Addr().String())
			if err != nil {
				return err
			}
			p.client = c.(*net.TCPConn)
			p.server, err = p.ln.AcceptTCP()
			return err
		})
		t.Cleanup(func() { p.ln.Close(); p.client.Close(); p.server.Close() })
		check(t, p, nil, 2000, true)
	})
}

// infoU32 reads a u32 field of c's struct tcp_info at byte offset off.
func infoU32(t testing.TB, c *net.TCPConn, off int) uint32 {
	t.Helper()
	return uint32(sockInt(t, c, func(fd int) (int, error) {
		info, err := tcpInfo(fd)
		if err != nil {
			return 0, err
		}
		return int(binary.NativeEndian.Uint32(info[off:])), nil
	}))
}

// TestSegmentSize: a restored socket sends segments of the connection's
// MSS. Set only with TCP_REPAIR_OPTIONS after connect, the MSS never
// reached the segment size, which stayed at the 536-byte default less
// options: 524-byte segments for life.
func TestSegmentSize(t *testing.T) {
	ns := nstest.NewNS(t, "rpmss")
	// An Ethernet-like MTU: loopback's 64 KB is above what TCP_MAXSEG takes.
	nstest.Exec(t, ns, "ip", "link", "set", "dev", "lo", "mtu", "9000")
	p := newPair(t, ns, 0)
	pingPong(t, p.client, p.server, 1)
	want := infoU32(t, p.server, tcpiSndMSS)
	_, nc := move(t, ns, p.server, nil)
	if got := infoU32(t, nc, tcpiSndMSS); got != want {
		t.Fatalf("restored socket sends %d-byte segments, the original %d", got, want)
	}
	pingPong(t, p.client, nc, 2)
}

// TestRoundTripAfterRestore: the restored socket's first round-trip
// estimate comes from an ACK that echoes a timestamp the source stamped
// (the client had not heard the new socket yet): it must not count the
// timestamp offset as time on the wire. With a one-second offset it read
// 1 s, and BBR paced the next segments at a few KB/s.
func TestRoundTripAfterRestore(t *testing.T) {
	ns := nstest.NewNS(t, "rprtt")
	nstest.NeedTool(t, "nft", "nftables")
	p := newPair(t, ns, 0)
	pingPong(t, p.client, p.server, 1)

	// The client hears the server, the server not the client: the data is
	// read but stays unacked, and the client's ACK is lost.
	cport := strconv.Itoa(p.client.LocalAddr().(*net.TCPAddr).Port)
	firewall(t, ns, "input", "tcp sport "+cport+" drop")
	msg := stream(3, 1000)
	if _, err := p.server.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := readVerify(p.client, msg, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	s := takeOut(t, p.server)
	if len(s.Unacked) != len(msg) {
		t.Fatalf("dumped %d unacked bytes, want %d", len(s.Unacked), len(msg))
	}
	nc := restoreHeard(t, ns, s)

	// The client's next segment acks the restored bytes and echoes the
	// source's stamp: the restored socket's first RTT sample.
	pingPong(t, p.client, nc, 1)
	waitFor(t, "the restored bytes acked", 5*time.Second, func() bool { return sockInt(t, nc, ioctl(unix.SIOCOUTQ)) == 0 })
	if rtt := time.Duration(infoU32(t, nc, tcpiRTT)) * time.Microsecond; rtt > 200*time.Millisecond {
		t.Fatalf("restored socket estimates the round trip at %v (lab: well under 1 ms)", rtt)
	}
}

// TestFreezeRefuses: sockets that are not established connections are
// refused with a typed error and left as they were.
func TestFreezeRefuses(t *testing.T) {
	ns := nstest.NewNS(t, "rpref")
	wantErr := func(t *testing.T, err error, st SocketState) {
		t.Helper()
		var e *Error
		if !errors.As(err, &e) || e.Op != "freeze" || e.Socket != st {
			t.Fatalf("Freeze: %v, want an *Error of op freeze with Socket %v", err, st)
		}
	}

	t.Run("listening", func(t *testing.T) {
		p := newPair(t, ns, 0)
		lf, err := p.ln.File()
		if err != nil {
			t.Fatal(err)
		}
		defer lf.Close()
		fc, err := net.FileConn(lf)
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()
		_, err = Freeze(fc.(*net.TCPConn))
		wantErr(t, err, Normal)
		// Untouched: it still accepts connections.
		var c net.Conn
		inNS(t, ns, func() error { c, err = net.Dial("tcp4", p.ln.Addr().String()); return err })
		defer c.Close()
		s, err := p.ln.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		pingPong(t, c, s, 1)
	})

	t.Run("closed conn", func(t *testing.T) {
		p := newPair(t, ns, 0)
		p.server.Close()
		_, err := Freeze(p.server)
		wantErr(t, err, Closed)
	})

	t.Run("nil", func(t *testing.T) {
		_, err := Freeze(nil)
		wantErr(t, err, Unknown)
	})
}

// TestLifecycle covers Discard and the errors of calls out of order.
func TestLifecycle(t *testing.T) {
	ns := nstest.NewNS(t, "rplife")
	p := newPair(t, ns, 0)
	f, err := Freeze(p.server)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	// Rebuild beside the frozen original (another 4-tuple owner would
	// collide, so the original goes first), discard, rebuild again.
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var se *Error
	if _, err := f.Dump(); !errors.As(err, &se) || se.Socket != Closed {
		t.Fatalf("Dump after Close: %v", err)
	}
	if err := f.Thaw(); !errors.As(err, &se) || se.Socket != Closed {
		t.Fatalf("Thaw after Close: %v", err)
	}
	var r *Restored
	inNS(t, ns, func() error { r, err = Restore(s, nil); return err })
	if err := r.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Activate(); !errors.As(err, &se) || se.Socket != Closed {
		t.Fatalf("Activate after Discard: %v", err)
	}
	// A target may rebuild before it takes the address: a transparent
	// socket takes a foreign local address while frozen; a plain one not.
	plain := foreign0(s)
	if _, err := Restore(&plain, nil); !errors.As(err, &se) || se.Op != "restore" || se.Socket != Closed {
		t.Fatalf("plain Restore on a foreign address: %v", err)
	}
	foreign := *s
	foreign.Local = netip.MustParseAddrPort("203.0.113.9:7") // not assigned here
	var fr *Restored
	inNS(t, ns, func() error { fr, err = Restore(&foreign, &RestoreOptions{Transparent: true}); return err })
	if err != nil {
		t.Fatalf("Restore on an address not assigned yet: %v", err)
	}
	if err := fr.Discard(); err != nil {
		t.Fatal(err)
	}
	bad := *s
	bad.Remote = netip.AddrPortFrom(netip.MustParseAddr("203.0.113.10"), 0) // no port: connect fails
	if _, err := Restore(&bad, nil); !errors.As(err, &se) || se.Op != "restore" || se.Socket != Closed {
		t.Fatalf("Restore to port 0: %v", err)
	}
	inNS(t, ns, func() error { r, err = Restore(s, nil); return err })
	nc, err := r.Activate()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pingPong(t, p.client, nc, 2)
}

func foreign0(s *State) State {
	f := *s
	f.Local = netip.MustParseAddrPort("203.0.113.9:7")
	return f
}

func BenchmarkDumpRestore(b *testing.B) {
	ns := nstest.NewNS(b, "rpbench")
	p := newPair(b, ns, 0)
	msg := stream(9, 4096)
	c := p.server
	// Timed: freeze, dump, close, restore (including the switch into the
	// namespace, which a real target does not pay), activate.
	for b.Loop() {
		b.StopTimer()
		if _, err := p.client.Write(msg); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "bytes at the server", 5*time.Second, func() bool { return sockInt(b, c, ioctl(unix.SIOCINQ)) == len(msg) })
		b.StartTimer()
		s := takeOut(b, c)
		var err error
		var r *Restored
		if err := nstest.Do(ns, func() error { r, err = Restore(s, nil); return err }); err != nil {
			b.Fatal(err)
		}
		if c, err = r.Activate(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := readVerify(c, msg, 5*time.Second); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	c.Close()
}

// TestInspectSendsNothing reads back a restored socket with bytes to read
// and room to offer a wider window than the client last heard of (as a
// ping-pong server's socket is): the target does so before the commit,
// when sending anything at all would turn the client to it (the kernel
// asks for the client's MAC from the VIP first).
func TestInspectSendsNothing(t *testing.T) {
	ns := nstest.NewNS(t, "rpinsp")
	p := newPair(t, ns, 4<<20)
	pingPong(t, p.client, p.server, 3)
	if _, err := p.client.Write(stream(3, 48)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "48 bytes in the server's receive queue", 5*time.Second, func() bool {
		return sockInt(t, p.server, ioctl(unix.SIOCINQ)) == 48
	})
	s := takeOut(t, p.server)
	// The client last heard of a window much narrower than the restored
	// socket can offer (its buffer grew since it last said): the state a
	// window update is sent for.
	s.Window.RcvWnd = 4096
	var r *Restored
	var err error
	inNS(t, ns, func() error { r, err = Restore(s, nil); return err })
	defer r.Discard()
	segsOut := func() uint32 {
		return uint32(sockInt(t, r.conn, func(fd int) (int, error) {
			info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				return 0, err
			}
			return int(info.Segs_out), nil
		}))
	}
	before := segsOut()
	for range 3 {
		got, recvLen, err := r.Inspect()
		if err != nil {
			t.Fatal(err)
		}
		if recvLen != len(s.RecvQueue) || got.RecvSeq != s.RecvSeq || got.SendSeq != s.SendSeq || got.Window.RcvWnd != s.Window.RcvWnd {
			t.Fatalf("inspected %v with %d bytes to read, window %+v; restored %v, window %+v", got, recvLen, got.Window, s, s.Window)
		}
	}
	if after := segsOut(); after != before {
		t.Fatalf("inspecting the restored socket sent %d segments", after-before)
	}
}

// TestSocketOptionsCarried moves connections whose options differ from
// what Go sets on a new connection (Nagle on; keep-alive off, or on with
// its own timing): the rebuilt socket has the application's options.
func TestSocketOptionsCarried(t *testing.T) {
	ns := nstest.NewNS(t, "rpopts")
	for _, keepAlive := range []bool{false, true} {
		p := newPair(t, ns, 0)
		if err := p.server.SetNoDelay(false); err != nil {
			t.Fatal(err)
		}
		if err := p.server.SetKeepAliveConfig(net.KeepAliveConfig{Enable: keepAlive, Idle: 77 * time.Second, Interval: 11 * time.Second, Count: 4}); err != nil {
			t.Fatal(err)
		}
		_, nc := move(t, ns, p.server, nil)
		got := []int{
			sockInt(t, nc, opt(unix.IPPROTO_TCP, unix.TCP_NODELAY)),
			sockInt(t, nc, opt(unix.SOL_SOCKET, unix.SO_KEEPALIVE)),
			sockInt(t, nc, opt(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)),
			sockInt(t, nc, opt(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL)),
			sockInt(t, nc, opt(unix.IPPROTO_TCP, unix.TCP_KEEPCNT)),
		}
		want := []int{0, 0, 77, 11, 4}
		if keepAlive {
			want[1] = 1
		}
		if !slices.Equal(got, want) {
			t.Errorf("keep-alive %v: restored nodelay, keepalive, idle, interval, count = %v, want %v", keepAlive, got, want)
		}
		pingPong(t, p.client, nc, 2)
	}
}

// TestStampLead: how far ahead of "now" a socket may have stamped, from
// its pacing rate and segment size.
func TestStampLead(t *testing.T) {
	info := func(rate uint64, mss uint32) []byte {
		b := make([]byte, sizeofTCPInfo)
		binary.NativeEndian.PutUint64(b[tcpiPacingRate:], rate)
		binary.NativeEndian.PutUint32(b[tcpiSndMSS:], mss)
		return b
	}
	for _, c := range []struct {
		name string
		rate uint64
		usec bool
		want uint32
	}{
		{"not paced", ^uint64(0), false, 0},
		{"no rate yet", 0, false, 0},
		{"700 MB/s: two 64 KB sends, under a tick", 700e6, false, 1},
		{"700 MB/s in usec", 700e6, true, 188},
		{"3 MB/s: two sends of 1 ms", 3e6, false, 2},
		{"15 KB/s: two sends of two segments", 15e3, false, 387},
		{"100 B/s: capped", 100, false, 1000},
		{"100 B/s in usec: capped", 100, true, 1000000},
	} {
		if got := stampLead(info(c.rate, 1448), c.usec); got != c.want {
			t.Errorf("%s: lead %d, want %d", c.name, got, c.want)
		}
	}
}

// TestRestoreRefusedWindowSaysWhy: a window the kernel refuses fails the
// restore with the values it checks, and leaves no socket behind.
func TestRestoreRefusedWindowSaysWhy(t *testing.T) {
	ns := nstest.NewNS(t, "rpwin")
	p := newPair(t, ns, 0)
	pingPong(t, p.client, p.server, 1)
	s := takeOut(t, p.server)
	if s.Window.SndWnd == 0 {
		t.Fatal("dumped a zero send window")
	}
	s.Window.MaxWindow = s.Window.SndWnd - 1
	var err error
	inNS(t, ns, func() error { _, err = Restore(s, nil); return nil })
	var re *Error
	if !errors.As(err, &re) || re.Socket != Closed || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Restore: %v, want an *Error with Socket Closed wrapping EINVAL", err)
	}
	for _, want := range []string{"TCP_REPAIR_WINDOW", fmt.Sprintf("max_window %d", s.Window.MaxWindow), "rcv_nxt"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Nothing is left bound to the connection's addresses: the same
	// state with its window intact restores.
	s.Window.MaxWindow = s.Window.SndWnd
	inNS(t, ns, func() error {
		r, err := Restore(s, nil)
		if err == nil {
			r.Discard()
		}
		return err
	})
}

// TestDumpReusesReleasedBuffers: the buffers a dump read megabytes of
// queue into serve the next dump once released, and the bytes are right.
func TestDumpReusesReleasedBuffers(t *testing.T) {
	ns := nstest.NewNS(t, "rprel")
	p := newPair(t, ns, 4<<20)
	msg := stream(6, 1<<20)
	if _, err := p.client.Write(msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "queued", 10*time.Second, func() bool { return sockInt(t, p.server, ioctl(unix.SIOCINQ)) == len(msg) })
	f, err := Freeze(p.server)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Thaw()
	s1, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1.RecvQueue, msg) {
		t.Fatal("first dump: wrong receive queue")
	}
	first := &s1.RecvQueue[0]
	s1.Release()
	if s1.RecvQueue != nil {
		t.Fatal("a released state still shows its queue")
	}
	s2, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s2.RecvQueue, msg) {
		t.Fatal("second dump: wrong receive queue")
	}
	if &s2.RecvQueue[0] != first {
		t.Error("the second dump did not reuse the released buffer")
	}
	s2.Release()
}

// TestListenBesideRestored: a server restarted while a connection restored
// here is still open (or closing) can listen on its port again, as beside
// the connection it accepted itself.
func TestListenBesideRestored(t *testing.T) {
	ns := nstest.NewNS(t, "rplis")
	p := newPair(t, ns, 0)
	pingPong(t, p.client, p.server, 1)
	_, nc := move(t, ns, p.server, nil)
	addr := p.ln.Addr().String()
	p.ln.Close()
	inNS(t, ns, func() error {
		l, err := net.Listen("tcp4", addr) // Go listeners set SO_REUSEADDR
		if err != nil {
			return fmt.Errorf("listen on %s beside the restored connection: %w", addr, err)
		}
		return l.Close()
	})
	pingPong(t, p.client, nc, 1)
}

// TestRestoreWindowUpdatedPastItsEdge restores a state whose send window
// was last updated by a segment past the receive window's edge, as a
// socket whose window shrank to zero is dumped (seen in a soak): the kernel
// refuses such a snd_wl1, and the restore must not fail on it.
func TestRestoreWindowUpdatedPastItsEdge(t *testing.T) {
	ns := nstest.NewNS(t, "rpwl1")
	p := newPair(t, ns, 0)
	pingPong(t, p.client, p.server, 1)
	s := takeOut(t, p.server)
	s.Window.SndWl1 = s.RecvSeq + uint32(len(s.RecvQueue)) + s.Window.RcvWnd + 2048
	var r *Restored
	inNS(t, ns, func() (err error) { r, err = Restore(s, nil); return err })
	nc, err := r.Activate()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	pingPong(t, p.client, nc, 2)
}

// TestRestoreBesideAClosingCopy restores a connection on a host that still
// holds a closing copy of it (the same addresses, closed by an application
// and stuck in FIN_WAIT1 since its FIN never got through): the copy is
// stale, the dumped state is the connection, and the restore must not be
// refused (connect: cannot assign requested address).
func TestRestoreBesideAClosingCopy(t *testing.T) {
	ns := nstest.NewNS(t, "rpstale")
	nstest.NeedTool(t, "nft", "nftables")
	p := newPair(t, ns, 0)
	pingPong(t, p.client, p.server, 2)

	f, err := Freeze(p.server)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Thaw(); err != nil {
		t.Fatal(err)
	}
	// The server's FIN never reaches the client, which still has the
	// connection as dumped.
	sport := strconv.Itoa(int(s.Local.Port()))
	firewall(t, ns, "output", "tcp sport "+sport+" drop")
	if err := p.server.Close(); err != nil {
		t.Fatal(err)
	}

	nc := restoreHeard(t, ns, s)
	pingPong(t, p.client, nc, 2)
}

// TestMovedSocketSilentOnceReleased freezes a socket that was already
// moved once (rebuilt transparent, as a target does before it holds the
// address), removes its address as a source's release does, and dumps it.
// Repair mode stops no timer: the frozen socket's loss probe and
// retransmission still fire. The client must receive nothing the dump does
// not know was sent; a loss probe carrying the held-back bytes would leave
// the client acknowledging past the rebuilt socket's snd_nxt, a stall for
// good.
func TestMovedSocketSilentOnceReleased(t *testing.T) {
	ns := nstest.NewNS(t, "rpsilent")
	const vip = "192.0.2.50"
	ln, client, server := pairOnAddr(t, ns, vip)
	_, moved := move(t, ns, server, &RestoreOptions{Transparent: true})
	pingPong(t, client, moved, 3)
	if err := moved.SetNoDelay(false); err != nil { // Nagle holds the second write back
		t.Fatal(err)
	}

	// The client's ACKs are lost from here: one segment stays in flight,
	// and Nagle keeps the next write unsent.
	waitFor(t, "the ping-pong acknowledged", 2*time.Second, func() bool {
		return sockInt(t, moved, ioctl(unix.SIOCOUTQ)) == 0
	})
	port := ln.Addr().(*net.TCPAddr).Port
	firewall(t, ns, "output", fmt.Sprintf("ip daddr %s tcp dport %d drop", vip, port))
	first, second := stream(7, 100), stream(8, 100)
	if _, err := moved.Write(first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first write in flight", 2*time.Second, func() bool {
		return sockInt(t, moved, ioctl(unix.SIOCOUTQ)) == len(first) && sockInt(t, moved, ioctl(siocOutqNSD)) == 0
	})
	if _, err := moved.Write(second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second write held back", 2*time.Second, func() bool {
		return sockInt(t, moved, ioctl(siocOutqNSD)) == len(second)
	})
	f, err := Freeze(moved)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nstest.Exec(t, ns, "ip", "addr", "del", vip+"/32", "dev", "lo")
	s, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Unacked) != len(first) || len(s.Unsent) != len(second) {
		t.Fatalf("dumped %d bytes unacked, %d unsent; want %d, %d", len(s.Unacked), len(s.Unsent), len(first), len(second))
	}
	// Past the loss probe's timer (about 200 ms with one segment out) and
	// the first retransmission's.
	time.Sleep(time.Second)
	client.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	got, _ := io.ReadAll(client)
	if !bytes.Equal(got, first) {
		t.Fatalf("the client got %d bytes after the dump said %d were sent: the frozen socket sent its unsent bytes once its address was gone", len(got), len(first))
	}
}

// TestPeerClosedMoves: a connection whose client has sent its last bytes
// and its FIN (CLOSE_WAIT, the application not yet reading) freezes and
// moves: the rebuilt socket gives the application those bytes, then the
// end, and what it answers reaches the client, then its close.
func TestPeerClosedMoves(t *testing.T) {
	ns := nstest.NewNS(t, "rppeer")
	p := newPair(t, ns, 0)
	pingPong(t, p.client, p.server, 2)
	if _, err := p.client.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	p.client.CloseWrite()
	waitFor(t, "CLOSE_WAIT", 5*time.Second, func() bool {
		return sockInt(t, p.server, func(fd int) (int, error) {
			info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			return int(info.State), err
		}) == 8 // TCP_CLOSE_WAIT
	})
	s := takeOut(t, p.server)
	if !s.PeerClosed || string(s.RecvQueue) != "bye" {
		t.Fatalf("dumped peer closed %v, receive queue %q; want true, \"bye\"", s.PeerClosed, s.RecvQueue)
	}
	b, err := s.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := back.UnmarshalBinary(b); err != nil || !back.PeerClosed {
		t.Fatalf("decoded peer closed %v, %v", back.PeerClosed, err)
	}
	var r *Restored
	inNS(t, ns, func() (err error) { r, err = Restore(&back, nil); return err })
	nc, err := r.Activate()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(nc)
	if err != nil || string(got) != "bye" {
		t.Fatalf("the rebuilt socket read %q, %v; want the last bytes, then the end", got, err)
	}
	if _, err := nc.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	p.client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(p.client); err != nil || string(got) != "ok" {
		t.Fatalf("the client read %q, %v; want the answer, then the close", got, err)
	}
}

// TestRestoreBesideAStaleCopy: an established socket with the connection's
// addresses is left alone while this host holds its address (it may be the
// live one), and destroyed once it does not (no packet of it can arrive
// here: a copy a source thawed after its target died while resuming),
// without a word to the client, whose connection the rebuilt socket then
// carries on.
func TestRestoreBesideAStaleCopy(t *testing.T) {
	ns := nstest.NewNS(t, "rpold")
	const vip = "192.0.2.51"
	_, client, server := pairOnAddr(t, ns, vip)
	pingPong(t, client, server, 2)
	f, err := Freeze(server)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Thaw(); err != nil {
		t.Fatal(err)
	}
	// Held here: the established copy may be the live one.
	var r *Restored
	inNS(t, ns, func() error { r, err = Restore(s, &RestoreOptions{Transparent: true}); return nil })
	if err == nil {
		r.Discard()
		t.Fatal("Restore beside an established socket on an address held here succeeded")
	}
	pingPong(t, client, server, 1) // untouched
	s = takeOut(t, server)         // the state as it is now, the copy closed...
	inNS(t, ns, func() error {     // ...and a stale one in its place, as a thaw leaves it
		stale, err := Restore(s, nil)
		if err != nil {
			return err
		}
		c, err := stale.Activate()
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
		return err
	})
	nstest.Exec(t, ns, "ip", "addr", "del", vip+"/32", "dev", "lo")
	inNS(t, ns, func() error { r, err = Restore(s, &RestoreOptions{Transparent: true}); return err })
	nstest.Exec(t, ns, "ip", "addr", "add", vip+"/32", "dev", "lo")
	nc, err := r.Activate()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pingPong(t, client, nc, 2)
}

// pairOnAddr gives ns the address addr on its loopback and connects a
// client from 127.0.0.1 to a server there: a service address a test can
// take away (ip addr del), as a source's release does.
func pairOnAddr(t *testing.T, ns, addr string) (ln *net.TCPListener, client, server *net.TCPConn) {
	t.Helper()
	nstest.Exec(t, ns, "ip", "addr", "add", addr+"/32", "dev", "lo")
	inNS(t, ns, func() error {
		l, err := net.Listen("tcp4", addr+":0")
		if err != nil {
			return err
		}
		ln = l.(*net.TCPListener)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
		c, err := d.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		client = c.(*net.TCPConn)
		server, err = ln.AcceptTCP()
		return err
	})
	t.Cleanup(func() {
		ln.Close()
		client.Close()
		server.Close()
	})
	return ln, client, server
}
