package chat_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestCloseConnections: every client is told and let go, the others in
// its channel see it quit, and the server still takes new clients.
func TestCloseConnections(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	if n := l.s.CloseConnections(); n != 2 {
		t.Fatalf("closed %d connections, want 2", n)
	}
	for _, c := range []*ircClient{a, b} {
		c.expect("ERROR")
		deadline := time.Now().Add(5 * time.Second)
		for c.readErr() == nil && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if c.readErr() == nil {
			t.Errorf("%s: the connection stayed open", c.nick)
		}
	}
	if n := len(l.s.Connections()); n != 0 {
		t.Errorf("%d connections left", n)
	}
	c := l.user("carol", "#lab") // the nicks are free again, the server serves on
	c.roundTrip("after")
}

// TestSettleTellsWhoStayed: when one member of #lab moves and another
// stays, the one who stays sees the other quit, as after a netsplit, and
// goes on; the one who moved is told nothing here.
func TestSettleTellsWhoStayed(t *testing.T) {
	l := serve(t, nil)
	stays := l.user("stays", "#lab")
	moves := l.user("moves", "#lab")
	stays.expect("JOIN", "#lab") // moves joined
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := l.s.Quiesce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var moved *net.TCPConn
	for _, pc := range p.Conns() {
		if pc.Conn.RemoteAddr().String() == moves.c.LocalAddr().String() {
			moved = pc.Conn
		}
	}
	if moved == nil {
		t.Fatal("the moving client is not among the paused connections")
	}
	p.Settle(func(c *net.TCPConn) bool { return c == moved })
	if m := stays.expect("QUIT"); m.Prefix == "" || !strings.HasPrefix(m.Prefix, "moves!") {
		t.Errorf("the QUIT seen by who stayed: %+v", m)
	}
	stays.roundTrip("after")
	if got := moves.messages("QUIT"); len(got) != 0 {
		t.Errorf("the one who moved was told: %v", got)
	}
}
