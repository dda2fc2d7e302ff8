package chat_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/chat"
	"github.com/sockshift/sockshift/handoff/nstest"
)

// A client that connects while a hand-off holds the state still is
// accepted by this host's kernel, but is in no snapshot. If the hand-off
// took its address away, the server lets go of it at once (irctest under
// hand-offs found one left waiting out the ping timeout, counted by every
// later LUSERS as an unknown connection); if the address stayed, it is
// served as usual once the hand-off ends.
func TestLateConnectionOfAMovedAddress(t *testing.T) {
	ns := nstest.NewNS(t, "chlate")
	const vip = "192.0.2.50"
	s := chat.New(nil)
	t.Cleanup(func() { s.Close() })
	// The server's sockets are in ns, its threads are not.
	chat.SetAddrGone(s, func(a net.Addr) (gone bool) {
		if err := nstest.Do(ns, func() error { gone = chat.AddrGone(a); return nil }); err != nil {
			t.Error(err)
		}
		return gone
	})
	// The service address comes and goes (ip addr add/del); the server's
	// own address (here 127.0.0.1) stays whatever happens.
	nstest.Run(t, "ip", "-n", ns, "addr", "add", vip+"/32", "dev", "lo")
	var vipLn, ownLn net.Listener
	if err := nstest.Do(ns, func() (err error) {
		if ownLn, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		vipLn, err = net.Listen("tcp4", vip+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vipLn.Close(); ownLn.Close() })
	go s.Serve(vipLn)
	go s.Serve(ownLn)
	dial := func(ln net.Listener, nick string) *ircClient {
		var c net.Conn
		if err := nstest.Do(ns, func() (err error) {
			c, err = net.DialTimeout("tcp4", ln.Addr().String(), 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return newClient(t, c, nick)
	}
	watcher := dial(ownLn, "watcher")
	watcher.register()
	conns := func() int { return len(s.Connections()) }

	for _, moved := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		p, err := s.Quiesce(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		late := dial(vipLn, "late")
		for deadline := time.Now().Add(5 * time.Second); conns() < 2; {
			if time.Now().After(deadline) {
				t.Fatal("the late connection was never accepted")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if moved {
			nstest.Run(t, "ip", "-n", ns, "addr", "del", vip+"/32", "dev", "lo")
		}
		p.Settle(func(*net.TCPConn) bool { return false }) // the watcher stays
		if !moved {
			late.register()
			late.send("QUIT")
			late.expect("ERROR")
			for conns() != 1 {
				time.Sleep(5 * time.Millisecond)
			}
			continue
		}
		for deadline := time.Now().Add(2 * time.Second); conns() != 1; {
			if time.Now().After(deadline) {
				t.Fatalf("%d connections a moment after the hand-off took the late one's address, want 1 (the watcher)", conns())
			}
			time.Sleep(5 * time.Millisecond)
		}
		watcher.send("LUSERS")
		watcher.expect("251")
		for _, m := range watcher.sync() {
			if m.Command == "253" {
				t.Errorf("LUSERS still counts %s unknown connection(s)", m.Params[1])
			}
		}
	}
}
