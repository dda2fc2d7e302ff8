package chat_test

import (
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
