package chat_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/chat"
	"github.com/sockshift/sockshift/handoff"
)

// flood writes n bytes of 'A' (no newline) to c from a 64 KiB buffer,
// until done or an error; it returns how much it wrote.
func flood(c net.Conn, n int64) (int64, error) {
	buf := bytes.Repeat([]byte{'A'}, 64<<10)
	var sent int64
	for sent < n {
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		k, err := c.Write(buf[:min(int64(len(buf)), n-sent)])
		sent += int64(k)
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// heapInUse is the process's heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// bytesIn is what the server read from the client with this nick.
func bytesIn(s *chat.Server, nick string) uint64 {
	for _, c := range s.Connections() {
		if c.Nick == nick {
			return c.BytesIn
		}
	}
	return 0
}

// A line that never ends is read no faster than the line rate, MaxLine
// bytes a line: a client cannot make the server read (and drop) a flood
// at full speed by leaving its line open.
func TestLongLineKeepsTheRate(t *testing.T) {
	l := serve(t, &chat.Config{MaxLongLine: 1 << 30})
	honest := l.user("honest", "#lab")
	f := l.user("flooder", "#lab")
	go flood(f.c, 100<<20)
	start := time.Now()
	for i := range 10 {
		honest.roundTrip("alive" + string(rune('0'+i)))
		time.Sleep(150 * time.Millisecond)
	}
	got := bytesIn(l.s, "flooder")
	elapsed := time.Since(start).Seconds()
	// The burst (20 lines), the rate (10 lines a second), and the last
	// read's 4 KiB, over what registration took.
	limit := uint64((20+10*elapsed+2)*chat.MaxLine) + 4096 + 200
	t.Logf("%d bytes read from the flooder in %.2f s (limit %d)", got, elapsed, limit)
	if got > limit {
		t.Errorf("read %d bytes of the open line in %.2f s, want at most %d: the rate does not hold", got, elapsed, limit)
	}
	if got < 10*chat.MaxLine {
		t.Errorf("read only %d bytes: the flood did not start, the test proves nothing", got)
	}
	f.expect("417", "flooder")
}

// 100 MB without a newline, read as fast as the server goes: its memory
// stays flat, the line gets one 417, and the line after it is served.
func TestHundredMegabytesWithoutNewline(t *testing.T) {
	l := serve(t, &chat.Config{MaxLongLine: 1 << 30, LinesPerSecond: 1e9, Burst: 1 << 20})
	honest := l.user("honest", "#lab")
	f := l.user("flooder", "#lab")
	base := heapInUse()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	const total = 100 << 20
	if n, err := flood(f.c, total); err != nil {
		t.Fatalf("flood: %d bytes, %v", n, err)
	}
	f.send("")
	f.roundTrip("after the flood")
	close(stop)
	<-sampled
	if got := bytesIn(l.s, "flooder"); got < total {
		t.Fatalf("the server read %d bytes of %d", got, total)
	}
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap %d MB before, peak %d MB while 100 MB went through", base>>20, peak.Load()>>20)
	if grew > 2<<20 {
		t.Errorf("the heap grew %d MB with one open line: the half line is kept", grew>>20)
	}
	if n := len(f.messages("417")); n != 1 {
		t.Errorf("%d 417 replies, want one for the one line", n)
	}
	honest.roundTrip("untouched")
}

// Past MaxLongLine (64 KiB by default) the client goes, with an ERROR;
// the others see it quit and lose nothing.
func TestEndlessLineDisconnects(t *testing.T) {
	l := serve(t, &chat.Config{LinesPerSecond: 1e6, Burst: 1000})
	honest := l.user("honest", "#lab")
	other := l.user("other", "#lab")
	f := l.user("flooder", "#lab")
	done := make(chan int64, 1)
	go func() { n, _ := flood(f.c, 100<<20); done <- n }()
	f.expect("ERROR", "Closing Link: 127.0.0.1 (Input line too long)")
	if q := honest.expect("QUIT", "Input line too long"); !strings.HasPrefix(q.Prefix, "flooder!") {
		t.Errorf("QUIT from %q", q.Prefix)
	}
	select {
	case n := <-done:
		if n >= 100<<20 {
			t.Errorf("the whole flood was taken (%d bytes)", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the flooder's writes never failed: it was not disconnected")
	}
	other.send("PRIVMSG #lab :after the flood")
	honest.expect("PRIVMSG", "#lab after the flood")
}

// A too-long line's progress moves with its connection: after a hand-off
// the rest of it is still dropped, it still counts towards MaxLongLine,
// and the line after it is served.
func TestLongLineMoves(t *testing.T) {
	cfg := &chat.Config{MaxLongLine: 6000}
	l1 := serve(t, cfg)
	l2 := serve(t, cfg)
	f := l1.user("flooder", "#lab")
	g := l1.user("finisher", "#lab")
	f.write(strings.Repeat("A", 3000))
	g.write(strings.Repeat("B", 3000))
	for deadline := time.Now().Add(5 * time.Second); bytesIn(l1.s, "flooder") < 3000 || bytesIn(l1.s, "finisher") < 3000; {
		if time.Now().After(deadline) {
			t.Fatal("the server never read the half lines")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := moveAll(t, l1.s, l2.s); n != 2 {
		t.Fatalf("moved %d, want 2", n)
	}
	g.write(strings.Repeat("B", 1000) + "\r\n")
	g.roundTrip("after the long line")
	if n := len(g.messages("417")); n != 1 {
		t.Errorf("finisher: %d 417 replies, want 1", n)
	}
	f.write(strings.Repeat("A", 4000)) // 7000 bytes in all: past 6000
	f.expect("ERROR", "Closing Link: 127.0.0.1 (Input line too long)")
	g.expect("QUIT", "Input line too long")
}

// A connection whose snapshot the target would refuse (here, more output
// queued than a snapshot may carry, which a kernel's unsent bytes brought
// in) is dropped before the freeze: the others move and lose nothing.
func TestSnapshotOverBoundDropped(t *testing.T) {
	l0 := serve(t, nil)
	l1 := serve(t, nil)
	l2 := serve(t, nil)
	a := l1.user("alice", "#lab")
	b := l1.user("bob", "#lab")

	// carol comes to l1 from l0 with 40 MB its kernel had not sent, and
	// never reads.
	raw := adoptWithUnsent(t, l0, l1, "carol", 64<<10, bytes.Repeat([]byte("x"), 40<<20))
	// and dave, the same way: two offenders share one wait.
	adoptWithUnsent(t, serve(t, nil), l1, "dave", 64<<10, bytes.Repeat([]byte("y"), 40<<20))

	start := time.Now()
	if n := moveAll(t, l1.s, l2.s); n != 2 {
		t.Fatalf("moved %d connections, want 2 (alice and bob; carol and dave dropped before the freeze)", n)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the hand-off took %v with two clients dropped", d)
	}
	for _, u := range []*ircClient{a, b} {
		var quit []string
		for range 2 {
			q := u.expect("QUIT", "Snapshot over the hand-off's bounds")
			quit = append(quit, strings.Split(q.Prefix, "!")[0])
		}
		if slices.Sort(quit); !slices.Equal(quit, []string{"carol", "dave"}) {
			t.Errorf("%s saw %v quit, want carol and dave", u.nick, quit)
		}
	}
	a.send("PRIVMSG #lab :moved")
	b.expect("PRIVMSG", "#lab moved")
	if n := len(l1.s.Connections()); n != 0 {
		t.Errorf("l1 still lists %d connections", n)
	}
	// carol's socket was closed: reading what reached her ends.
	raw.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.Copy(io.Discard, raw); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("carol's connection never ended: %v", err)
	}
}

// adoptWithUnsent registers nick on from (in #lab) and moves it to to,
// with unsent as what from's kernel had not sent yet, as a hand-off
// would; the client's receive buffer is rcvbuf. It returns the client's
// end, which has read nothing.
func adoptWithUnsent(t *testing.T, from, to *local, nick string, rcvbuf int, unsent []byte) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp4", from.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.(*net.TCPConn).SetReadBuffer(rcvbuf)
	io.WriteString(raw, "NICK "+nick+"\r\nUSER "+nick+" 0 * :c\r\nJOIN #lab\r\nPING :joined\r\n")
	// Registered and joined once the PING is answered: the server has
	// read (and handled) every line.
	for deadline := time.Now().Add(5 * time.Second); bytesIn(from.s, nick) < 40; {
		if time.Now().After(deadline) {
			t.Fatalf("%s never registered", nick)
		}
		time.Sleep(5 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := from.s.Quiesce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pcs := p.Conns()
	shared := p.Shared()
	p.Settle(func(*net.TCPConn) bool { return true })
	if len(pcs) != 1 {
		t.Fatalf("%d connections on the first server, want 1", len(pcs))
	}
	if err := to.s.Adopt(shared, []handoff.Adopted{{Conn: pcs[0].Conn, State: pcs[0].State, Unsent: unsent}}); err != nil {
		t.Fatal(err)
	}
	return raw
}

// What a source's kernel had not sent is not counted in the queue's
// bound (MaxSendQ, 256 KiB): the source counted it as written. A client
// that comes with 1 MB of it in flight, and reads, is not dropped by the
// next line for it.
func TestInheritedOutputNotCountedInSendQ(t *testing.T) {
	l0 := serve(t, nil)
	l1 := serve(t, nil)
	a := l1.user("alice", "#lab")
	unsent := bytes.Repeat([]byte(":x NOTICE carol :pad\r\n"), (1<<20)/22)
	raw := adoptWithUnsent(t, l0, l1, "carol", 64<<10, unsent)
	a.send("PRIVMSG #lab :for carol")
	a.roundTrip("handled")
	c := newClient(t, raw, "carol")
	c.expect("PRIVMSG", "#lab for carol")
	if n := len(c.messages("NOTICE")); n < len(unsent)/22 {
		t.Errorf("carol got %d of the %d lines in flight", n, len(unsent)/22)
	}
	if len(c.messages("ERROR")) > 0 {
		t.Error("carol was dropped")
	}
}
