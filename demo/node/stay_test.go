package node_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/node"
)

// chatPinger is an IRC client on plain sockets: it registers a nick, then
// sends PING with a numbered token and checks that every PONG comes back
// once, in order, and that nothing else ends the session: chat bytes both
// ways, and the server's state of that user, carried through.
type chatPinger struct {
	c      net.Conn
	nick   string
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	rounds int
	err    error
}

func startChatPinger(t *testing.T, c net.Conn, nick string) *chatPinger {
	t.Helper()
	p := &chatPinger{c: c, nick: nick, stop: make(chan struct{}), done: make(chan struct{})}
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "NICK %s\r\nUSER %s 0 * :%s\r\n", nick, nick, nick)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: registering: %v", nick, err)
		}
		if strings.Contains(line, " 001 ") {
			break
		}
	}
	go func() {
		defer close(p.done)
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			token := fmt.Sprintf("%s-%d", nick, i)
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := fmt.Fprintf(c, "PING :%s\r\n", token); err != nil {
				p.fail(err)
				return
			}
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					p.fail(fmt.Errorf("after %d rounds: %w", i, err))
					return
				}
				if strings.HasPrefix(line, "ERROR") {
					p.fail(fmt.Errorf("server closed the session: %q", line))
					return
				}
				if !strings.Contains(line, " PONG ") {
					continue // a PING of the server's, a quit of a peer
				}
				if !strings.HasSuffix(strings.TrimRight(line, "\r\n"), ":"+token) && !strings.HasSuffix(strings.TrimRight(line, "\r\n"), " "+token) {
					p.fail(fmt.Errorf("round %d: want the PONG for %s, got %q", i, token, line))
					return
				}
				break
			}
			p.mu.Lock()
			p.rounds++
			p.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return p
}

func (p *chatPinger) fail(err error) {
	p.mu.Lock()
	p.err = err
	p.mu.Unlock()
}

func (p *chatPinger) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rounds
}

func (p *chatPinger) finish(t *testing.T) int {
	t.Helper()
	close(p.stop)
	<-p.done
	if p.err != nil || p.rounds == 0 {
		t.Fatalf("chat client %s after %d rounds: %v", p.nick, p.rounds, p.err)
	}
	return p.rounds
}

func ownAddr(env *labtest.Env, role string) netip.Addr {
	h, _ := env.Host(role)
	return h.Addr.Addr()
}

// TestDirectConnectionsStay: clients of each server's own address (a
// monitoring probe, an operator) on echo and on chat, beside clients of
// the service addresses with data in flight both ways. Every hand-off
// succeeds; the service clients move, the direct ones stay and are served
// on, each byte of both kinds in order.
func TestDirectConnectionsStay(t *testing.T) {
	env := labtest.Start(t, nil)
	a, b := ownAddr(env, "a"), ownAddr(env, "b")
	vipEcho := startRawStream(env.DialVIP(7))
	vipChat := startChatPinger(t, env.DialChat(), "mover")
	directEcho := map[string]*rawStream{
		"a": startRawStream(env.DialAddr(a, 7)),
		"b": startRawStream(env.DialAddr(b, 7)),
	}
	directChat := map[string]*chatPinger{
		"a": startChatPinger(t, env.DialAddr(a, labtest.ChatPort), "probea"),
		"b": startChatPinger(t, env.DialAddr(b, labtest.ChatPort), "probeb"),
	}
	time.Sleep(100 * time.Millisecond)

	from, to := "a", "b"
	for i := 0; i < 20; i++ {
		res := env.HandOff(from, to)
		if !res.OK {
			t.Fatalf("hand-off %d %s->%s failed: %s", i, from, to, res.Error)
		}
		if res.Connections != 2 {
			t.Errorf("hand-off %d moved %d connections, want the 2 on the service addresses", i, res.Connections)
		}
		src := ownAddr(env, from).String()
		var stayed []string
		for _, s := range res.Stayed {
			if !strings.HasPrefix(s.Local, src+":") || !strings.Contains(s.Reason, "not on the service address") {
				t.Errorf("hand-off %d: stayed %+v: want a connection to %s, not on the service address", i, s, src)
			}
			stayed = append(stayed, s.Service)
		}
		slices.Sort(stayed)
		if !slices.Equal(stayed, []string{"chat", "echo"}) {
			t.Errorf("hand-off %d: stayed %v, want one echo and one chat connection", i, res.Stayed)
		}
		from, to = to, from
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	t.Logf("service clients: %d bytes echoed, %d chat rounds", vipEcho.finish(t), vipChat.finish(t))
	for _, role := range []string{"a", "b"} {
		t.Logf("direct clients of %s: %d bytes echoed, %d chat rounds", role, directEcho[role].finish(t), directChat[role].finish(t))
	}
}

// TestOneServiceMoves hands chat alone to b, with its address, while echo
// stays on a and is never paused: held in step mode with chat frozen,
// echo still answers round trips. A later hand-off of everything moves
// what each server holds.
func TestOneServiceMoves(t *testing.T) {
	env := labtest.Start(t, nil)
	echoPing := startRawPingPong(env.DialVIP(7))
	echoStream := startRawStream(env.DialVIP(7))
	chatter := startChatPinger(t, env.DialChat(), "alone")
	time.Sleep(100 * time.Millisecond)

	done := stepToWith(t, env, node.HandoffRequest{To: "b", Step: true, Services: []string{"chat"}}, "dump")
	before := echoPing.count()
	deadline := time.Now().Add(10 * time.Second)
	for echoPing.count() < before+20 {
		if time.Now().After(deadline) {
			t.Fatalf("echo answered %d round trips while chat was frozen, want 20: echo was paused", echoPing.count()-before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := finishSteps(t, env, done)
	if !res.OK || !slices.Equal(res.Services, []string{"chat"}) || !slices.Equal(res.Addresses, []string{lab.ChatVIP.String()}) || res.Connections != 1 {
		t.Fatalf("chat alone: %+v", res)
	}
	wantHolders(t, env, map[string]string{"echo": "a", "chat": "b"})

	// Everything from a: a holds only echo now.
	if res := env.HandOff("a", "b"); !res.OK || !slices.Equal(res.Services, []string{"echo"}) || res.Connections != 2 {
		t.Fatalf("everything from a (echo only): %+v", res)
	}
	wantHolders(t, env, map[string]string{"echo": "b", "chat": "b"})
	if res := env.HandOff("b", "a"); !res.OK || len(res.Services) != 2 || res.Connections != 3 {
		t.Fatalf("everything from b: %+v", res)
	}
	wantHolders(t, env, map[string]string{"echo": "a", "chat": "a"})
	time.Sleep(50 * time.Millisecond)
	t.Logf("echo: %d round trips, %d bytes streamed; chat: %d rounds", echoPing.finish(t), echoStream.finish(t), chatter.finish(t))

	// Bad selections are refused and change nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, services := range [][]string{{"nosuch"}, {"chat", "nosuch"}} {
		code, res, err := env.PostHandOff(ctx, "a", node.HandoffRequest{To: "b", Services: services})
		if err != nil || code != 400 || res.OK || !strings.Contains(res.Error, "echo, chat") {
			t.Errorf("services %v: %d %+v %v; want 400 naming the services there are", services, code, res, err)
		}
	}
	wantHolders(t, env, map[string]string{"echo": "a", "chat": "a"})
}

// TestTargetRefusesOneConnection: the target will not rebuild one chat
// connection. That connection cannot outlive chat's address, so chat (its
// address and every client) stays on the source and is served on there;
// echo moves.
func TestTargetRefusesOneConnection(t *testing.T) {
	env := labtest.Start(t, nil)
	echoStream := startRawStream(env.DialVIP(7))
	refusedConn := env.DialChat()
	refused := startChatPinger(t, refusedConn, "refused")
	other := startChatPinger(t, env.DialChat(), "other")
	env.StopNode("b")
	env.StartNode("b", false, "--fault", "restore "+refusedConn.LocalAddr().String())
	time.Sleep(100 * time.Millisecond)

	res := env.HandOff("a", "b")
	if !res.OK || !slices.Equal(res.Services, []string{"echo"}) || res.Connections != 1 {
		t.Fatalf("hand-off with one refused chat connection: %+v", res)
	}
	if len(res.Stayed) != 2 {
		t.Fatalf("stayed %+v, want both chat connections", res.Stayed)
	}
	for _, s := range res.Stayed {
		if s.Service != "chat" || !strings.Contains(s.Reason, "refused by the target") || !strings.Contains(s.Reason, refusedConn.LocalAddr().String()) {
			t.Errorf("stayed %+v: want chat, refused by the target for %v", s, refusedConn.LocalAddr())
		}
	}
	wantHolders(t, env, map[string]string{"echo": "b", "chat": "a"})
	time.Sleep(100 * time.Millisecond)
	t.Logf("echo %d bytes; chat rounds %d and %d", echoStream.finish(t), refused.finish(t), other.finish(t))
}

func wantHolders(t *testing.T, env *labtest.Env, want map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := env.Holders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for svc, role := range want {
		if got[svc] != role {
			t.Errorf("%s's address is held by %q, want %q (holders %v)", svc, got[svc], role, got)
		}
	}
}
