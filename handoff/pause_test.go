package handoff

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// echoPair serves one loopback connection with a Pauser-driven echo loop
// and returns the client's end and a channel with the loop's last verdict.
func echoPair(t *testing.T, p *Pauser, ln *net.TCPListener) (net.Conn, <-chan Verdict) {
	t.Helper()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	srv, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	g := p.Add(srv, func() []byte { return []byte("snap") })
	done := make(chan Verdict, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := srv.Read(buf)
			if n > 0 {
				srv.Write(buf[:n])
			}
			if err != nil {
				if v := g.Check(err); v != Retry {
					done <- v
					return
				}
			}
		}
	}()
	return client, done
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

func listen(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestPauserSettlesEachConnection: both connections stop; the one that
// "moved" ends its loop with Moved and its socket untouched, the other
// echoes on; a line sent while paused is answered after the verdict.
func TestPauserSettlesEachConnection(t *testing.T) {
	var p Pauser
	ln := listen(t)
	stays, stayDone := echoPair(t, &p, ln)
	moves, moveDone := echoPair(t, &p, ln)
	roundTrip(t, stays, "before")
	roundTrip(t, moves, "before")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paused, err := p.Pause(ctx, func() []byte { return []byte("shared") })
	if err != nil {
		t.Fatal(err)
	}
	conns := paused.Conns()
	if len(conns) != 2 || string(paused.Shared()) != "shared" || string(conns[0].State) != "snap" {
		t.Fatalf("paused: %d conns, shared %q, state %q", len(conns), paused.Shared(), conns[0].State)
	}
	io.WriteString(stays, "during") // waits in the kernel until the verdict
	movedConn := conns[0].Conn
	if movedConn.RemoteAddr().String() != moves.LocalAddr().String() {
		movedConn = conns[1].Conn
	}
	paused.Settle(func(c *net.TCPConn) bool { return c == movedConn })

	if v := <-moveDone; v != Moved {
		t.Fatalf("the moved connection's loop ended with %v", v)
	}
	// Untouched: the socket is still open (the library closes it).
	movedConn.SetDeadline(time.Time{})
	if _, err := movedConn.Write([]byte("x")); err != nil {
		t.Fatalf("the moved connection's socket was closed: %v", err)
	}
	got := make([]byte, 6)
	stays.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(stays, got); err != nil || string(got) != "during" {
		t.Fatalf("line sent while paused: %q, %v", got, err)
	}
	roundTrip(t, stays, "after")
	if p.Len() != 1 {
		t.Errorf("pauser holds %d connections, want the one that stayed", p.Len())
	}
	select {
	case v := <-stayDone:
		t.Fatalf("the staying loop ended: %v", v)
	default:
	}
}

// TestPauserTimesOut: a connection whose goroutine never comes to Check
// fails the pause by its deadline, and the others go on.
func TestPauserTimesOut(t *testing.T) {
	var p Pauser
	ln := listen(t)
	live, _ := echoPair(t, &p, ln)
	stuck, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	srv, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	p.Add(srv, nil) // nobody serves it

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Pause(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pause with a stuck connection: %v", err)
	}
	roundTrip(t, live, "still served")
}

// TestPauserConnectionEndsWhilePausing: a client that hangs up as the
// pause begins does not hold the pause up; it is simply not listed.
func TestPauserConnectionEndsWhilePausing(t *testing.T) {
	var p Pauser
	ln := listen(t)
	live, _ := echoPair(t, &p, ln)
	leaving, leftDone := echoPair(t, &p, ln)
	leaving.Close()
	if v := <-leftDone; v != Failed {
		t.Fatalf("a closed client's loop ended with %v, want failed", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paused, err := p.Pause(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(paused.Conns()); n != 1 {
		t.Fatalf("%d paused connections, want 1", n)
	}
	paused.Settle(func(*net.TCPConn) bool { return false })
	r := bufio.NewReader(live)
	io.WriteString(live, "line\n")
	live.SetDeadline(time.Now().Add(5 * time.Second))
	if s, err := r.ReadString('\n'); err != nil || s != "line\n" {
		t.Fatalf("after the pause: %q, %v", s, err)
	}
}
