package node_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/labview"
	"github.com/sockshift/sockshift/demo/node"
)

// What survives a SIGKILL at each step of a hand-off a->b, by who died.
// Every connection survives except those whose only holder died:
//
//   - the source, before its sockets reached the target (at quiesce,
//     freeze, release, dump, transfer): its connections die with it; the
//     addresses come back to it (still on its interface, or taken back by
//     Recover when the target holds nothing);
//   - the source, once the target reported them rebuilt (at restore,
//     announce, resume): they live on the target, which commits them when
//     the restarted source tells it to (or, after the commit, on its own);
//   - the target, before it served them (quiesce to announce): the source
//     still holds every connection, frozen, and keeps or takes back the
//     addresses;
//   - the target, once it serves them (at resume, which the source reaches
//     after the target said so): they die with it; it keeps the addresses.
func survives(victim, step string) bool {
	if victim == "b" {
		return step != "resume"
	}
	return slices.Contains([]string{"restore", "announce", "resume"}, step)
}

// TestKillAtEveryStep kills the source, and separately the target, with
// SIGKILL at every step of a step-mode hand-off (held at that step, so the
// kill lands there every time), with a verifying stream, a ping-pong client
// and 100 idle clients of both services attached. The cluster restarts the
// dead server, as systemd does. Within 2 s of the kill each service address
// is on exactly one server, and at no sample (every 10 ms) on two; the
// connections that survive carry every byte, and exactly those survive
// that the rules above say; the next hand-off works.
func TestKillAtEveryStep(t *testing.T) {
	for _, victim := range []string{"a", "b"} {
		for _, step := range labview.StepNames() {
			t.Run(victim+"/"+step, func(t *testing.T) { killAt(t, victim, step) })
		}
	}
}

func killAt(t *testing.T, victim, step string) {
	env := labtest.StartConfig(t, cluster.Config{Restart: true})
	outside, pingpong := startRawStream(env.DialVIP(7)), startRawPingPong(env.DialVIP(7))
	idle := dialIdle(t, env, 50, 50)
	time.Sleep(50 * time.Millisecond)

	done := stepTo(t, env, step)
	watch := watchAddrs(t, env)
	killed := time.Now()
	if err := env.CrashNode(victim); err != nil {
		t.Fatal(err)
	}
	if victim == "b" {
		// The source waits at the step; let it go on and find the target gone.
		res := finishSteps(t, env, done)
		t.Logf("the source's answer: ok %v, rolled back %v: %s", res.OK, res.RolledBack, res.Error)
		// At resume the target served before it died: the hand-off was done.
		if res.OK != (step == "resume") {
			t.Errorf("a hand-off to a target killed at %s reported ok %v", step, res.OK)
		}
	} else {
		<-done
	}
	holders := watch.settled(t, killed, 2*time.Second)
	t.Logf("settled %v after the kill: %v", watch.settledAt.Sub(killed).Round(time.Millisecond), holders)
	waitUp(t, env, victim, 15*time.Second)

	alive := idle.probe()
	want := 0
	if survives(victim, step) {
		want = len(idle.conns)
		finishBoth(t, outside, pingpong)
	}
	if alive != want {
		t.Errorf("%d of %d idle connections alive after %s died at %s, want %d", alive, len(idle.conns), victim, step, want)
	}
	watch.stop(t)

	// The next hand-off works, with a new client on the way.
	from := holders[lab.VIP]
	to := map[string]string{"a": "b", "b": "a"}[from]
	fresh := startRawStream(env.DialVIP(7))
	time.Sleep(20 * time.Millisecond)
	if res := env.HandOff(from, to); !res.OK {
		t.Fatalf("the next hand-off %s->%s: %+v", from, to, res)
	}
	time.Sleep(50 * time.Millisecond)
	fresh.finish(t)
}

// waitUp waits until a server answers on its control socket, idle.
func waitUp(t *testing.T, env *labtest.Env, role string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := env.Control(role).State(ctx)
		cancel()
		if err == nil && !st.Busy {
			return
		}
		if time.Now().After(deadline) {
			h, _ := env.Host(role)
			ss, _ := exec.Command("ip", "netns", "exec", h.Namespace, "ss", "-tanoe", "sport = :7 or sport = :6667").CombinedOutput()
			t.Fatalf("server %s is not up and idle within %v: %v\nits sockets on the service ports:\n%s", role, within, err, ss)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nickSeq numbers the idle chat clients' nicks.
var nickSeq atomic.Int64

// idleClients are quiet clients of both services.
type idleClients struct {
	conns []net.Conn
	chat  []bool
	rd    []*bufio.Reader
}

func dialIdle(t *testing.T, env *labtest.Env, echoes, chats int, nick ...int) *idleClients {
	t.Helper()
	ic := &idleClients{}
	first := 0
	if len(nick) > 0 {
		first = nick[0]
	}
	for i := range echoes {
		c := env.DialVIP(7)
		ic.conns, ic.chat, ic.rd = append(ic.conns, c), append(ic.chat, false), append(ic.rd, bufio.NewReader(c))
		_ = i
	}
	for i := range chats {
		c := env.DialChat()
		rd := bufio.NewReader(c)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// A nick of its own: the ghost of an earlier connection (a copy the
		// source thawed after its target died while resuming, which its
		// client had seen closed) may hold the old one for minutes.
		fmt.Fprintf(c, "NICK idle%d_%d\r\nUSER idle 0 * :idle\r\n", first+i, nickSeq.Add(1))
		var got []string
		for {
			line, err := rd.ReadString('\n')
			got = append(got, line)
			if err != nil {
				// What the client heard, and what each host's kernel has of
				// the connection: why a registration went unanswered.
				port := strconv.Itoa(c.LocalAddr().(*net.TCPAddr).Port)
				var ss strings.Builder
				for _, role := range []string{"a", "b"} {
					h, _ := env.Host(role)
					out, _ := exec.Command("ip", "netns", "exec", h.Namespace, "ss", "-tnia", "( sport = :"+port+" or dport = :"+port+" )").CombinedOutput()
					fmt.Fprintf(&ss, "%s:\n%s", role, out)
				}
				t.Logf("chat client %d heard %q; the sockets:\n%s", i, got, ss.String())
				t.Fatalf("chat client %d registering: %v", i, err)
			}
			if strings.Contains(line, " 001 ") {
				break
			}
		}
		c.SetDeadline(time.Time{})
		ic.conns, ic.chat, ic.rd = append(ic.conns, c), append(ic.chat, true), append(ic.rd, rd)
	}
	return ic
}

// probe counts the connections that still answer.
func (ic *idleClients) probe() int {
	alive, _ := ic.probeEach()
	return countTrue(alive)
}

// probeEach says which connections still answer (an echo comes back
// whole, a chat PING draws its PONG), and how many answered wrong bytes.
func (ic *idleClients) probeEach() (alive []bool, wrong int) {
	var mu sync.Mutex
	alive = make([]bool, len(ic.conns))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 200)
	for i, c := range ic.conns {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			ok, bad := false, false
			if ic.chat[i] {
				token := fmt.Sprintf("probe%d", i)
				if _, err := fmt.Fprintf(c, "PING :%s\r\n", token); err == nil {
					for {
						line, err := ic.rd[i].ReadString('\n')
						if err != nil {
							break
						}
						if strings.Contains(line, "PONG") && strings.Contains(line, token) {
							ok = true
							break
						}
					}
				}
			} else {
				msg := fmt.Sprintf("probe %d\n", i)
				got := make([]byte, len(msg))
				if _, err := io.WriteString(c, msg); err == nil {
					n, err := io.ReadFull(ic.rd[i], got)
					ok = err == nil && string(got) == msg
					bad = n == len(msg) && !ok
				}
			}
			mu.Lock()
			alive[i] = ok
			if bad {
				wrong++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return alive, wrong
}

// redial replaces the connections that died.
func (ic *idleClients) redial(t *testing.T, env *labtest.Env, alive []bool) {
	t.Helper()
	for i, ok := range alive {
		if ok {
			continue
		}
		ic.conns[i].Close()
		fresh := dialIdle(t, env, map[bool]int{false: 1}[ic.chat[i]], map[bool]int{true: 1}[ic.chat[i]], i)
		ic.conns[i], ic.rd[i] = fresh.conns[0], fresh.rd[0]
	}
}

// addrWatch samples, every 10 ms, which servers hold each service
// address, straight from their interfaces (netlink), and remembers any
// sample with an address on two.
type addrWatch struct {
	env  *labtest.Env
	quit chan struct{}
	done chan struct{}

	mu        sync.Mutex
	twice     []string
	last      map[netip.Addr][]string
	settledAt time.Time
}

func watchAddrs(t *testing.T, env *labtest.Env) *addrWatch {
	t.Helper()
	w := &addrWatch{env: env, quit: make(chan struct{}), done: make(chan struct{})}
	handles := map[string]*netlink.Handle{}
	for _, role := range []string{"a", "b"} {
		h, _ := env.Host(role)
		ns, err := netns.GetFromName(h.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		nh, err := netlink.NewHandleAt(ns)
		ns.Close()
		if err != nil {
			t.Fatal(err)
		}
		handles[role] = nh
	}
	go func() {
		defer close(w.done)
		defer func() {
			for _, h := range handles {
				h.Close()
			}
		}()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			held := map[netip.Addr][]string{}
			for _, role := range []string{"a", "b"} {
				addrs, err := handles[role].AddrList(nil, netlink.FAMILY_V4)
				if err != nil {
					continue
				}
				for _, a := range addrs {
					ip, _ := netip.AddrFromSlice(a.IP)
					ip = ip.Unmap()
					if ip == lab.VIP || ip == lab.ChatVIP {
						held[ip] = append(held[ip], role)
					}
				}
			}
			w.mu.Lock()
			for a, roles := range held {
				if len(roles) > 1 {
					w.twice = append(w.twice, fmt.Sprintf("%v on %v at %s", a, roles, time.Now().Format("15:04:05.000")))
				}
			}
			w.last = held
			w.mu.Unlock()
			select {
			case <-w.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// settled waits until each address is on exactly one server, at most
// within, and returns which.
func (w *addrWatch) settled(t *testing.T, since time.Time, within time.Duration) map[netip.Addr]string {
	t.Helper()
	for {
		w.mu.Lock()
		last := w.last
		w.mu.Unlock()
		if len(last[lab.VIP]) == 1 && len(last[lab.ChatVIP]) == 1 {
			w.settledAt = time.Now()
			return map[netip.Addr]string{lab.VIP: last[lab.VIP][0], lab.ChatVIP: last[lab.ChatVIP][0]}
		}
		if time.Since(since) > within {
			t.Fatalf("%v after the kill the addresses are held by %v: want each on exactly one server", within, last)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends the sampling and fails the test if any sample found an address
// on two servers.
func (w *addrWatch) stop(t *testing.T) {
	t.Helper()
	close(w.quit)
	<-w.done
	if len(w.twice) > 0 {
		t.Errorf("an address was on two servers: %v", w.twice[:min(len(w.twice), 5)])
	}
}

// TestKillAtRandomInstants kills the source, then the target, at random
// instants of normal (unpaced) hand-offs of 1,000 connections of both
// services, 50 times each, the demo restarting the dead server: within
// 2 s of each kill each address is on exactly one server (never two at
// any 10 ms sample); a connection that answers answers right; a hand-off
// reported ok whose source died after it kept every connection; and the
// next hand-off works.
func TestKillAtRandomInstants(t *testing.T) {
	const perSide, echoes, chats = 50, 900, 100
	env := labtest.StartConfig(t, cluster.Config{Restart: true})
	idle := dialIdle(t, env, echoes, chats)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)

	// One hand-off unkilled measures how long one takes here.
	start := time.Now()
	if res := env.HandOff("a", "b"); !res.OK {
		t.Fatalf("first hand-off: %+v", res)
	}
	span := time.Since(start)
	t.Logf("a hand-off of %d connections takes %v here (the API call)", len(idle.conns), span)
	holder := "b"
	for i := range 2 * perSide {
		victimIsSource := i < perSide
		from, to := holder, map[string]string{"a": "b", "b": "a"}[holder]
		victim := to
		if victimIsSource {
			victim = from
		}
		watch := watchAddrs(t, env)
		done := make(chan node.HandoffResult, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, res, err := env.PostHandOff(ctx, from, node.HandoffRequest{To: to})
			if err != nil {
				res.Error = err.Error()
			}
			done <- res
		}()
		delay := time.Duration(rng.Int64N(int64(span + span/5)))
		time.Sleep(delay)
		killed := time.Now()
		if err := env.CrashNode(victim); err != nil {
			t.Fatal(err)
		}
		res := <-done
		holders := watch.settled(t, killed, 2*time.Second)
		waitUp(t, env, victim, 15*time.Second)
		alive, wrong := idle.probeEach()
		watch.stop(t)
		t.Logf("%2d: killed %s (%s) %v into %s->%s: hand-off ok %v; addresses on %v; %d of %d connections alive",
			i, victim, map[bool]string{true: "source", false: "target"}[victimIsSource], delay.Round(time.Millisecond),
			from, to, res.OK, holders, countTrue(alive), len(alive))
		if wrong > 0 {
			t.Fatalf("%d connections answered with wrong bytes", wrong)
		}
		lost := len(alive) - countTrue(alive)
		switch {
		case victimIsSource && (res.OK || holders[lab.VIP] == to) && lost > 0:
			t.Errorf("the target took the hand-off and only the source died, yet %d of %d connections are gone", lost, len(alive))
		case !victimIsSource && res.RolledBack && !strings.Contains(res.Error, "left repair mode") && lost > 0:
			t.Errorf("the target died before it resumed any socket (%s), yet %d of %d connections are gone", res.Error, lost, len(alive))
		}
		holder = holders[lab.VIP]
		if holders[lab.ChatVIP] != holder {
			// The services were split by a refusal: bring chat along.
			if r := env.HandOff(holders[lab.ChatVIP], holder); !r.OK {
				t.Fatalf("gathering chat on %s: %+v", holder, r)
			}
		}
		idle.redial(t, env, alive)
	}
	to := map[string]string{"a": "b", "b": "a"}[holder]
	if res := env.HandOff(holder, to); !res.OK || res.Connections < len(idle.conns) {
		t.Fatalf("the last hand-off %s->%s: %+v", holder, to, res)
	}
	if alive, wrong := idle.probeEach(); countTrue(alive) != len(alive) || wrong > 0 {
		t.Fatalf("after the last hand-off %d of %d connections alive, %d wrong", countTrue(alive), len(alive), wrong)
	}
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
