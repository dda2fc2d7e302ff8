package handoff

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// serveEcho echoes on c through p, the way an application built on the
// Pauser does.
func serveEcho(p *Pauser, c *net.TCPConn) {
	g := p.Add(c, func() []byte { return []byte("snap") })
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				c.Write(buf[:n])
			}
			if err != nil && g.Check(err) != Retry {
				return
			}
		}
	}()
}

func dialNow(t *testing.T, addr string, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, timeout)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// TestListenerOwnsTheAcceptSide: while paused, Accept hands out nothing
// (an Accept under way when the pause came included); the connections the
// kernel accepts meanwhile are the pause's (lateConns, which the source
// freezes once the address is gone); at the end, those that stayed come
// out of Accept first, and new clients connect as before.
func TestListenerOwnsTheAcceptSide(t *testing.T) {
	var p Pauser
	ln := listen(t)
	l := p.Listen(ln)
	addr := ln.Addr().String()
	accepted := make(chan *net.TCPConn, 8)
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	acceptOne := func(what string) *net.TCPConn {
		t.Helper()
		select {
		case c := <-accepted:
			serveEcho(&p, c)
			return c
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: not accepted", what)
		}
		return nil
	}
	served, err := dialNow(t, addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	acceptOne("before the pause")
	roundTrip(t, served, "before")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paused, err := p.Pause(ctx, nil) // the Accept above is under way again
	if err != nil {
		t.Fatal(err)
	}
	late := map[netip.AddrPort]net.Conn{}
	for range 2 {
		c, err := dialNow(t, addr, time.Second) // the kernel completes it
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("early")) // waits in the socket
		late[c.LocalAddr().(*net.TCPAddr).AddrPort()] = c
	}
	select {
	case c := <-accepted:
		t.Fatalf("Accept handed out %v during the pause", c.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}
	if n := len(paused.Conns()); n != 1 {
		t.Fatalf("%d paused connections, want the one served", n)
	}
	held, err := paused.(*pausedGates).lateConns()
	if err != nil {
		t.Fatal(err)
	}
	if len(held) != 2 || late[held[0].RemoteAddr().(*net.TCPAddr).AddrPort()] == nil || late[held[1].RemoteAddr().(*net.TCPAddr).AddrPort()] == nil {
		t.Fatalf("the pause's late connections: %d, want the 2 dialed during it", len(held))
	}

	// One "moves", the other stays.
	moved := held[0]
	paused.Settle(func(c *net.TCPConn) bool { return c == moved })
	moved.Close() // the library's part
	if c := acceptOne("the late connection that stayed"); c != held[1] {
		t.Fatalf("Accept after the pause gave %v, want the late connection that stayed (%v)", c.RemoteAddr(), held[1].RemoteAddr())
	}
	stayed := late[held[1].RemoteAddr().(*net.TCPAddr).AddrPort()]
	got := make([]byte, 5)
	stayed.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(stayed, got); err != nil || string(got) != "early" {
		t.Fatalf("the late connection that stayed echoed %q, %v; want what it sent before it was accepted", got, err)
	}
	roundTrip(t, served, "after")
	fresh, err := dialNow(t, addr, time.Second)
	if err != nil {
		t.Fatalf("dial after the pause: %v", err)
	}
	acceptOne("after the pause")
	roundTrip(t, fresh, "fresh")
}

// TestAddDuringAPause: a connection added while a pause is under way is
// paused at once (its Read returns to Check and waits there), is not among
// the paused connections, and goes on here when the pause ends.
func TestAddDuringAPause(t *testing.T) {
	var p Pauser
	ln := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paused, err := p.Pause(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := dialNow(t, ln.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	serveEcho(&p, srv)
	client.Write([]byte("x"))
	client.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := client.Read(make([]byte, 1)); n != 0 {
		t.Fatal("a connection added during the pause was served during it")
	}
	if n := len(paused.Conns()); n != 0 {
		t.Fatalf("%d paused connections, want none (it came after the pause)", n)
	}
	paused.Settle(func(*net.TCPConn) bool { return false })
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 1)
	if _, err := client.Read(got); err != nil || got[0] != 'x' {
		t.Fatalf("after the pause: %q, %v; want the echo of x", got, err)
	}
	roundTrip(t, client, "on")
}
