package chat

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A shared snapshot the target's decoder would refuse fails the hand-off
// before anything is frozen: Quiesce says why, and every client goes on
// here. (No command can make such a state; the test plants one.)
func TestRefusedSharedSnapshotFailsBeforeTheFreeze(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(nil)
	go s.Serve(ln)
	t.Cleanup(func() { ln.Close(); s.Close() })
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	waitFor := func(what string) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", what, err)
			}
			if strings.Contains(line, what) {
				return
			}
		}
	}
	io.WriteString(c, "NICK alice\r\nUSER alice 0 * :A\r\nJOIN #lab\r\n")
	waitFor(" 366 ")

	s.mu.Lock()
	s.chans["#lab"].key = "two words" // no MODE +k makes this
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, err := s.Quiesce(ctx)
	if err == nil {
		p.Settle(func(*net.TCPConn) bool { return false })
		t.Fatal("Quiesce took a shared snapshot the target refuses")
	}
	if !strings.Contains(err.Error(), "the target would refuse the shared snapshot") {
		t.Errorf("Quiesce: %v", err)
	}
	io.WriteString(c, "PING :still\r\n")
	waitFor("PONG sockshift :still")

	// CheckShared and CheckConn say the same to a target.
	s.mu.Lock()
	shared := s.sharedSnapshot().encode()
	s.mu.Unlock()
	if err := s.CheckShared(shared); err == nil {
		t.Error("CheckShared takes it")
	}
	if err := s.CheckConn([]byte{connVersion - 1}); err == nil {
		t.Error("CheckConn takes an old version")
	}
}
