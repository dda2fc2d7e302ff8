package echo

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

func listen(t *testing.T) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	go s.Serve(ln)
	t.Cleanup(func() { ln.Close(); s.Close() })
	return s, ln.Addr().String()
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

func TestEchoes(t *testing.T) {
	s, addr := listen(t)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "hello\n")
	// The counter moves once Write returns, which may be after the client
	// already has the echo.
	var conns []ConnInfo
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if conns = s.Connections(); len(conns) == 1 && conns[0].BytesOut == 6 {
			break
		}
	}
	if len(conns) != 1 || conns[0].BytesIn != 6 || conns[0].BytesOut != 6 {
		t.Fatalf("connections: %+v", conns)
	}
}

// A paused connection reads nothing more; resumed, it echoes what arrived
// meanwhile, in order.
func TestQuiesceResume(t *testing.T) {
	s, addr := listen(t)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "before")
	p, err := s.Quiesce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Conns()); n != 1 {
		t.Fatalf("paused %d connections, want 1", n)
	}
	c.Write([]byte("during"))
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 10)); err == nil {
		t.Fatalf("a paused connection echoed %d bytes", n)
	}
	p.Settle(noneMoved)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 6)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "during" {
		t.Fatalf("after resume: %q, %v", got, err)
	}
	roundTrip(t, c, "after")
}

// The snapshot of a connection blocked on a client that does not read
// holds the bytes it could not write back; adopting it elsewhere writes
// them first.
func TestSnapshotCarriesPendingBytes(t *testing.T) {
	s, addr := listen(t)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, never read yet
	go c.Write(payload)
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p, err := s.Quiesce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pc := p.Conns()
	pending, in, out, err := decodeState(pc[0].State)
	if err != nil {
		t.Fatal(err)
	}
	if in != out+uint64(len(pending)) {
		t.Fatalf("snapshot: in %d, out %d, pending %d: bytes unaccounted for", in, out, len(pending))
	}
	if in == 0 {
		t.Fatal("nothing read before the pause")
	}
	p.Settle(noneMoved)
	got := make([]byte, len(payload))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("echo after resume differs: %v", err)
	}
}

func TestQuiesceTimesOutAndResumes(t *testing.T) {
	s, addr := listen(t)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already over: the pause cannot be waited for
	// Pausing is immediate, so it may still win the race with the
	// cancelled context; then the caller resumes it. Otherwise Quiesce
	// must have let every connection go on by itself.
	if p, err := s.Quiesce(ctx); err == nil {
		p.Settle(noneMoved)
	}
	roundTrip(t, c, "still")
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState([]byte("abc"), 3, 0))
	f.Add([]byte{})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		pending, in, out, err := decodeState(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeState(pending, in, out), b) {
			t.Fatal("decode/encode is not a round trip")
		}
	})
}

// TestEchoesBulkInOrder: a connection that starts with a small read buffer
// and grows it carries a large stream back byte for byte, in order.
func TestEchoesBulkInOrder(t *testing.T) {
	_, addr := listen(t)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 4<<20)
	for i := range msg {
		msg[i] = byte(i*7 + i>>11)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		i := 0
		for got[i] == msg[i] {
			i++
		}
		t.Fatalf("echo differs from byte %d", i)
	}
}

// allMoved and noneMoved are the verdicts of a committed hand-off that
// took everything and of a rollback.
func allMoved(*net.TCPConn) bool  { return true }
func noneMoved(*net.TCPConn) bool { return false }
