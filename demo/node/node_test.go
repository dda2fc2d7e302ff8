package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/client"
	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/handoff/wire"
)

// rawStream is an outside client, written here with plain sockets and not
// with the project's client: it writes a counter stream to the echo
// service and checks every byte comes back in order.
type rawStream struct {
	c       net.Conn
	written int64
	mu      sync.Mutex
	read    int64
	err     error
	done    chan struct{}
	stop    chan struct{}
}

func pattern(off int64) byte { return byte(off*7 + off>>8 + off>>16) }

func startRawStream(c net.Conn) *rawStream {
	s := &rawStream{c: c, done: make(chan struct{}), stop: make(chan struct{})}
	go func() {
		buf := make([]byte, 1500)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			for i := range buf {
				buf[i] = pattern(s.written + int64(i))
			}
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			n, err := c.Write(buf)
			s.mu.Lock()
			s.written += int64(n)
			s.mu.Unlock()
			if err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		defer close(s.done)
		buf := make([]byte, 64<<10)
		for {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := c.Read(buf)
			for i := 0; i < n; i++ {
				if buf[i] != pattern(s.read+int64(i)) {
					s.setErr(errors.New("outside client: wrong byte"))
					return
				}
			}
			s.mu.Lock()
			s.read += int64(n)
			s.mu.Unlock()
			if err != nil {
				s.setErr(err)
				return
			}
		}
	}()
	return s
}

func (s *rawStream) setErr(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// finish stops writing, waits until every written byte came back, and
// returns how many bytes made the round trip.
func (s *rawStream) finish(t *testing.T) int64 {
	t.Helper()
	close(s.stop)
	time.Sleep(50 * time.Millisecond)
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.mu.Lock()
		read, written, err := s.read, s.written, s.err
		s.mu.Unlock()
		if err != nil {
			t.Fatalf("outside client failed after %d of %d bytes: %v", read, written, err)
		}
		if read == written && read > 0 {
			return read
		}
		if time.Now().After(deadline) {
			t.Fatalf("outside client: %d bytes written, only %d came back", written, read)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawPingPong is an outside ping-pong client on plain sockets: it sends a
// numbered message, waits for exactly that message back, and repeats.
type rawPingPong struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	rounds int
	err    error
}

// count returns the round trips so far.
func (p *rawPingPong) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rounds
}

func startRawPingPong(c net.Conn) *rawPingPong {
	p := &rawPingPong{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		msg := make([]byte, 48)
		got := make([]byte, len(msg))
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			for j := range msg {
				msg[j] = byte(i*31 + j)
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Write(msg); err != nil {
				p.err = err
				return
			}
			if _, err := io.ReadFull(c, got); err != nil {
				p.err = err
				return
			}
			if !bytes.Equal(got, msg) {
				p.err = fmt.Errorf("round %d: the echo differs", i)
				return
			}
			p.mu.Lock()
			p.rounds++
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *rawPingPong) finish(t *testing.T) int {
	t.Helper()
	close(p.stop)
	<-p.done
	if p.err != nil || p.rounds == 0 {
		t.Fatalf("outside ping-pong client after %d rounds: %v", p.rounds, p.err)
	}
	return p.rounds
}

// runClients runs the project's verifying client in stream and ping mode
// from the client namespace until ctx ends.
func runClients(ctx context.Context, env *labtest.Env) (wait func(t *testing.T) []client.Stats) {
	var wg sync.WaitGroup
	stats := make([]client.Stats, 2)
	errs := make([]error, 2)
	for i, mode := range []string{client.Stream, client.Ping} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = client.Run(ctx, client.Config{
				Addr: net.JoinHostPort(lab.VIP.String(), "7"), Mode: mode, Rate: 4 << 20,
				Interval: time.Millisecond, Dial: env.Dialer(),
			})
		}()
	}
	return func(t *testing.T) []client.Stats {
		t.Helper()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s client: %v (%+v)", stats[i].Mode, err, stats[i])
			}
		}
		return stats
	}
}

func TestHandOffsCarryEveryByte(t *testing.T) {
	env := labtest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runClients(ctx, env)
	outside := startRawStream(env.DialVIP(7))
	pingpong := startRawPingPong(env.DialVIP(7))
	time.Sleep(200 * time.Millisecond)

	from, to := "a", "b"
	const handoffs = 50
	for i := 0; i < handoffs; i++ {
		res := env.HandOff(from, to)
		if !res.OK {
			t.Fatalf("hand-off %d %s->%s failed: %s", i, from, to, res.Error)
		}
		if res.Connections != 4 {
			t.Errorf("hand-off %d moved %d connections, want 4", i, res.Connections)
		}
		from, to = to, from
		time.Sleep(20 * time.Millisecond)
	}
	if h := env.Holder(); h != "a" {
		t.Errorf("after %d hand-offs the VIP is on %q, want a", handoffs, h)
	}
	time.Sleep(200 * time.Millisecond)
	got := outside.finish(t)
	rounds := pingpong.finish(t)
	cancel()
	stats := wait(t)
	for _, st := range stats {
		if st.Bytes == 0 {
			t.Errorf("%s client carried no bytes", st.Mode)
		}
		t.Logf("%s client: %d bytes, %d pings, worst gap %v, %d retransmits", st.Mode, st.Bytes, st.Pings,
			time.Duration(st.WorstGapUS)*time.Microsecond, st.Retransmits)
	}
	t.Logf("outside clients: %d bytes streamed round trip, %d ping-pong rounds", got, rounds)
}

// TestDataInFlightBothWays freezes while the outside client has a large
// amount queued both ways: the server's receive queue and its send queue
// are full when the hand-off starts.
func TestDataInFlightBothWays(t *testing.T) {
	env := labtest.Start(t, nil)
	c := env.DialVIP(7)
	// A small, fixed receive buffer on the client: autotuned, it grew
	// large enough to take in most of the 8 MB, and on an idle machine
	// the client had written everything before the second hand-off, with
	// nothing left in the server's receive queue.
	if err := c.(*net.TCPConn).SetReadBuffer(128 << 10); err != nil {
		t.Fatal(err)
	}
	// Write 8 MB without reading: the echo service fills the client's
	// receive window, then its own send queue, then stops reading, so data
	// waits in the server's receive queue too.
	payload := make([]byte, 8<<20)
	for i := range payload {
		payload[i] = pattern(int64(i))
	}
	writeErr := make(chan error, 1)
	go func() {
		c.SetWriteDeadline(time.Now().Add(60 * time.Second))
		_, err := c.Write(payload)
		writeErr <- err
	}()
	time.Sleep(300 * time.Millisecond)
	for i, hop := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "b"}} {
		res := env.HandOff(hop[0], hop[1])
		if !res.OK {
			t.Fatalf("hand-off %d failed: %s", i, res.Error)
		}
		// The rebuilt socket is the dumped one: same sequence numbers,
		// windows, options and queues; the timestamp clock only ahead.
		if len(res.Moved) != 1 {
			t.Fatalf("hand-off %d reports %d moved connections, want 1", i, len(res.Moved))
		}
		m := res.Moved[0]
		before, after := m.Before, m.After
		if after.Timestamp <= before.Timestamp {
			t.Errorf("hand-off %d: timestamp clock went from %d to %d", i, before.Timestamp, after.Timestamp)
		}
		// The never-sent bytes are written after the socket leaves repair
		// mode; the kernel keeps buffer sizes even (an odd size autotuning
		// left comes back one byte smaller, never larger). A frozen socket
		// still takes in data (a client may find the target early through
		// ARP), so its receive queue can only grow, and windows move.
		same := after.SendSeq == before.SendSeq && after.RecvSeq == before.RecvSeq &&
			after.SndWscale == before.SndWscale && after.RcvWscale == before.RcvWscale &&
			after.MSS == before.MSS && after.SACK == before.SACK && after.Timestamps == before.Timestamps &&
			after.Unacked == before.Unacked && after.Unsent == 0 && after.RecvQueue >= before.RecvQueue &&
			after.RcvBuf == before.RcvBuf&^1 && after.SndBuf == before.SndBuf&^1
		if !same {
			t.Errorf("hand-off %d: rebuilt socket differs:\nbefore %+v\nafter  %+v", i, before, after)
		}
		if before.RecvQueue == 0 || before.Unsent+before.Unacked == 0 {
			t.Errorf("hand-off %d: no data in flight at the freeze (%+v): the test proves less than it should", i, before)
		}
	}
	got := make([]byte, len(payload))
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo back: %v", err)
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) {
		i := 0
		for i < len(got) && got[i] == payload[i] {
			i++
		}
		t.Fatalf("echo differs from what was sent at byte %d of %d", i, len(payload))
	}
	// And the connection goes on, both ways.
	c.Write([]byte("still here"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "still here" {
		t.Fatalf("after the hand-offs: %q, %v", buf, err)
	}
}

func TestRollbackWhenTargetRefuses(t *testing.T) {
	for _, phase := range []string{"target-prepare", "target-restore"} {
		t.Run(phase, func(t *testing.T) {
			env := labtest.Start(t, map[string][]string{"b": {"--fault", phase}})
			outside := startRawStream(env.DialVIP(7))
			time.Sleep(100 * time.Millisecond)
			res := env.HandOff("a", "b")
			if res.OK || !res.RolledBack {
				t.Fatalf("hand-off should have failed and rolled back: %+v", res)
			}
			if h := env.Holder(); h != "a" {
				t.Fatalf("after rollback the VIP is on %q, want a", h)
			}
			time.Sleep(200 * time.Millisecond)
			outside.finish(t)
		})
	}
}

func TestRollbackWhenTargetDies(t *testing.T) {
	env := labtest.Start(t, map[string][]string{"b": {"--fault", "hang:target-restore"}})
	outside := startRawStream(env.DialVIP(7))
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() {
		defer close(done)
		res := env.HandOff("a", "b")
		if res.OK || !res.RolledBack {
			t.Errorf("hand-off should have failed and rolled back: %+v", res)
		}
	}()
	// B has rebuilt the sockets, taken the VIP and announced it: now it dies.
	time.Sleep(500 * time.Millisecond)
	env.KillNode("b")
	<-done
	// The restarted B drops the VIP it was left with.
	env.StartNode("b", false)
	if h := env.Holder(); h != "a" {
		t.Fatalf("after rollback the VIP is on %q, want a", h)
	}
	time.Sleep(300 * time.Millisecond)
	outside.finish(t)
	// And a hand-off to the healthy B works afterwards.
	if res := env.HandOff("a", "b"); !res.OK {
		t.Fatalf("hand-off after restart: %s", res.Error)
	}
}

func TestRefusesPeerWithoutKey(t *testing.T) {
	env := labtest.Start(t, nil)
	outside := startRawStream(env.DialVIP(7))
	// Restart B with a key of its own: it cannot prove the lab's key.
	env.KillNode("b")
	other := filepath.Join(t.TempDir(), "other-key")
	if _, err := wire.GenerateKeyFile(other); err != nil {
		t.Fatal(err)
	}
	key := env.Key
	env.Key = other
	env.StartNode("b", false)
	env.Key = key
	res := env.HandOff("a", "b")
	if res.OK || !res.RolledBack {
		t.Fatalf("hand-off to a peer with another key should fail and roll back: %+v", res)
	}
	if h := env.Holder(); h != "a" {
		t.Fatalf("VIP on %q, want a", h)
	}
	time.Sleep(100 * time.Millisecond)
	outside.finish(t)
	_ = os.Remove(other)
}

func TestPeerUnreachableRollsBack(t *testing.T) {
	env := labtest.Start(t, nil)
	outside := startRawStream(env.DialVIP(7))
	env.KillNode("b")
	res := env.HandOff("a", "b")
	if res.OK || !res.RolledBack || !strings.Contains(res.Error, "unreachable") {
		t.Fatalf("hand-off to a dead peer: want a clear 'unreachable' error and a rollback, got %+v", res)
	}
	if h := env.Holder(); h != "a" {
		t.Fatalf("VIP on %q, want a", h)
	}
	outside.finish(t)
}

// TestJunkOnTheChannel sends junk, a half hello and an idle connection to
// the target's hand-off channel: each is refused, nothing is restored, and
// a real hand-off still works afterwards.
func TestJunkOnTheChannel(t *testing.T) {
	env := labtest.Start(t, nil)
	outside := startRawStream(env.DialVIP(7))
	peer := net.JoinHostPort(env.Lab.Servers[1].Addr.Addr().String(), "7070")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, junk := range [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		bytes.Repeat([]byte{0xff}, 1<<16),
		[]byte("SSHS"), // a truncated hello
		nil,            // an idle peer
	} {
		c, err := env.Dial(ctx, "tcp4", peer)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(junk)
		// The node answers junk by closing; an idle peer is cut off by the
		// handshake deadline. Either way the read ends.
		c.SetReadDeadline(time.Now().Add(15 * time.Second))
		// (closing with junk unread is a RST: closed all the same)
		if _, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("junk %.12q: the node kept the connection open: %v", junk, err)
		}
		c.Close()
	}
	if h := env.Holder(); h != "a" {
		t.Fatalf("after junk the VIP is on %q", h)
	}
	if res := env.HandOff("a", "b"); !res.OK {
		t.Fatalf("hand-off after junk: %s", res.Error)
	}
	outside.finish(t)
}
