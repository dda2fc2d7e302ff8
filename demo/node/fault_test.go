package node_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff/nstest"
)

// checkRolledBack asserts what a rollback promises: the VIP on a alone,
// and nothing left behind on b.
func checkRolledBack(t *testing.T, env *labtest.Env) {
	t.Helper()
	if h := env.Holder(); h != "a" { // Holder fails if both hold it
		t.Fatalf("after the rollback the VIP is on %q, want a", h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := env.Control("b").State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Connections) != 0 {
		t.Fatalf("after the rollback b still serves %d connections: %+v", len(st.Connections), st.Connections)
	}
}

// handOffOK hands a->b and back, both of which must succeed.
func handOffOK(t *testing.T, env *labtest.Env, wantConns int) {
	t.Helper()
	for _, hop := range [][2]string{{"a", "b"}, {"b", "a"}} {
		res := env.HandOff(hop[0], hop[1])
		if !res.OK {
			t.Fatalf("hand-off %s->%s: %s", hop[0], hop[1], res.Error)
		}
		if res.Connections != wantConns {
			t.Errorf("hand-off %s->%s moved %d connections, want %d", hop[0], hop[1], res.Connections, wantConns)
		}
	}
}

// TestRollbackAtEveryPhase fails the hand-off at every phase boundary, on
// the source (a) and on the target (b), with outside clients streaming and
// ping-ponging through it: each failure rolls back, the VIP stays on a,
// every byte arrives with no reset, and once the faulty server is restarted
// without the fault a hand-off works.
func TestRollbackAtEveryPhase(t *testing.T) {
	type tc struct{ node, phase string }
	var cases []tc
	// "transfer" and "restore" fail the source after the target rebuilt
	// the sockets: the rollback that once left a client stuck (the target's
	// read-back sent a window update, whose ARP from the VIP turned the
	// client to it).
	for _, p := range []string{"quiesce", "freeze", "release", "dump", "transfer", "restore", "announce"} {
		cases = append(cases, tc{"a", p})
	}
	for _, p := range []string{"target-prepare", "target-restore"} {
		cases = append(cases, tc{"b", p})
	}
	for _, c := range cases {
		t.Run(c.node+"/"+c.phase, func(t *testing.T) {
			env := labtest.Start(t, map[string][]string{c.node: {"--fault", c.phase}})
			sc, pc := env.DialVIP(7), env.DialVIP(7)
			outside, pingpong := startRawStream(sc), startRawPingPong(pc)
			time.Sleep(50 * time.Millisecond)

			res := env.HandOff("a", "b")
			if res.OK || !res.RolledBack || !strings.Contains(res.Error, "--fault "+c.phase) {
				t.Fatalf("want a failure at %s, rolled back, naming the fault; got %+v", c.phase, res)
			}
			checkRolledBack(t, env)
			time.Sleep(50 * time.Millisecond) // the clients carry on after the rollback

			if c.node == "a" {
				// Restarting the source ends its connections: check them first.
				outside.finish(t)
				pingpong.finish(t)
				sc.Close()
				pc.Close()
			}
			env.KillNode(c.node)
			env.StartNode(c.node, c.node == "a")
			if c.node == "a" {
				outside = startRawStream(env.DialVIP(7))
				time.Sleep(20 * time.Millisecond)
				handOffOK(t, env, 1)
			} else {
				// The same clients, through the rollback and now two hand-offs.
				handOffOK(t, env, 2)
				pingpong.finish(t)
			}
			time.Sleep(50 * time.Millisecond)
			outside.finish(t)
		})
	}
}

// stepTo starts a step-mode hand-off a->b and releases phases until the
// one named waits. It returns a channel with the hand-off's answer.
func stepTo(t *testing.T, env *labtest.Env, waitAt string) <-chan node.HandoffResult {
	t.Helper()
	return stepToWith(t, env, node.HandoffRequest{To: "b", Step: true}, waitAt)
}

// stepToWith is stepTo with a request of the caller's (from a, in step
// mode).
func stepToWith(t *testing.T, env *labtest.Env, req node.HandoffRequest, waitAt string) <-chan node.HandoffResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	done := make(chan node.HandoffResult, 1)
	go func() {
		res, err := env.Control("a").HandOffWith(ctx, req)
		if err != nil {
			res.Error = err.Error()
		}
		done <- res
	}()
	for {
		select {
		case res := <-done:
			t.Fatalf("the step-mode hand-off ended before %s: %+v", waitAt, res)
		default:
		}
		st, err := env.Control("a").State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case st.Step == nil || st.Step.Waiting == "":
			time.Sleep(5 * time.Millisecond)
		case st.Step.Waiting == waitAt:
			return done
		default:
			if _, err := env.Control("a").Step(ctx, false); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// moveBoth hands the outside clients' two connections from one server to
// the other; when says at what point, for the failure.
func moveBoth(t *testing.T, env *labtest.Env, from, to, when string) {
	t.Helper()
	if res := env.HandOff(from, to); !res.OK || res.Connections != 2 {
		t.Fatalf("hand-off %s->%s %s: %+v", from, to, when, res)
	}
}

// finishBoth lets the last echoes land, then ends both outside clients,
// which fail the test on any byte missing, wrong or doubled.
func finishBoth(t *testing.T, outside *rawStream, pingpong *rawPingPong) {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	outside.finish(t)
	pingpong.finish(t)
}

// finishSteps releases the waiting phases of a step-mode hand-off a->b
// until it answers on done, and returns the answer.
func finishSteps(t *testing.T, env *labtest.Env, done <-chan node.HandoffResult) node.HandoffResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		select {
		case res := <-done:
			return res
		default:
		}
		if _, err := env.Control("a").Step(ctx, false); err != nil && !strings.Contains(err.Error(), "no hand-off is waiting") {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTargetDiesAfterRestoreBeforeCommit kills the target when it has
// rebuilt every socket and taken the VIP, and waits for the decision (the
// step mode holds the source right there): the source must roll back, not
// commit to a dead peer.
// The source looks at the channel just before it commits (a dead target's
// kernel closed it), and the target takes the VIP only at the commit, so a
// dead target leaves no address behind to answer the client with RSTs.
func TestTargetDiesAfterRestoreBeforeCommit(t *testing.T) {
	env := labtest.Start(t, nil)
	sc := env.DialVIP(7)
	outside, pingpong := startRawStream(sc), startRawPingPong(env.DialVIP(7))
	time.Sleep(50 * time.Millisecond)
	done := stepTo(t, env, "announce") // the step before the commit
	env.KillNode("b")
	if _, err := env.Control("a").Step(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.OK || !res.RolledBack {
		t.Fatalf("a commit to a dead target: want a rollback, got %+v", res)
	}
	env.StartNode("b", false) // drops the VIP it was left with
	checkRolledBack(t, env)
	time.Sleep(50 * time.Millisecond)
	handOffOK(t, env, 2)
	outside.finish(t)
	pingpong.finish(t)
}

// TestSourceDiesAfterCommit kills the source once it has committed (the
// step mode holds it just after the commit, before it tells the target to
// resume): the target owns the connections and serves them on.
func TestSourceDiesAfterCommit(t *testing.T) {
	env := labtest.Start(t, nil)
	outside, pingpong := startRawStream(env.DialVIP(7)), startRawPingPong(env.DialVIP(7))
	time.Sleep(50 * time.Millisecond)
	done := stepTo(t, env, "resume") // the commit is behind us
	env.KillNode("a")
	<-done // the node died: an error, whatever it says
	if h := env.Holder(); h != "b" {
		t.Fatalf("after the commit and the source's death the VIP is on %q, want b", h)
	}
	time.Sleep(100 * time.Millisecond)
	// a comes back empty, and takes the connections back.
	env.StartNode("a", false)
	moveBoth(t, env, "b", "a", "back to the restarted source")
	finishBoth(t, outside, pingpong)
}

// TestConcurrentHandOffsRefused asks for a second hand-off while one runs
// (held by the step mode, so the overlap is certain): on the source, and on
// the target, busy as a target. Each gets 409 and "already running"; the
// running one then completes, and the VIP and the connections are fine.
func TestConcurrentHandOffsRefused(t *testing.T) {
	env := labtest.Start(t, nil)
	outside, pingpong := startRawStream(env.DialVIP(7)), startRawPingPong(env.DialVIP(7))
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	busy := func(from, to string) {
		t.Helper()
		status, res, err := env.PostHandOff(ctx, from, node.HandoffRequest{To: to})
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusConflict || res.OK || !strings.Contains(res.Error, "already running") {
			t.Fatalf("a second hand-off from %s: want 409 and \"already running\", got %d %+v", from, status, res)
		}
	}
	done := stepTo(t, env, "quiesce")
	busy("a", "b")
	if _, err := env.Control("a").Step(ctx, false); err != nil {
		t.Fatal(err)
	}
	// Once b is a target (its session starts at prepare), b is busy too.
	for {
		st, err := env.Control("a").State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Step != nil && st.Step.Waiting == "freeze" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	busy("b", "a")
	if res := finishSteps(t, env, done); !res.OK {
		t.Fatalf("the running hand-off: %+v", res)
	}
	if h := env.Holder(); h != "b" {
		t.Fatalf("VIP on %q, want b", h)
	}
	moveBoth(t, env, "b", "a", "after the refusals")
	finishBoth(t, outside, pingpong)
}

// TestCrashedServerComesBack kills each server's process as a crash would;
// the cluster restarts it (as systemd does on the VMs), and a hand-off to
// it carries the outside clients.
func TestCrashedServerComesBack(t *testing.T) {
	env := labtest.StartConfig(t, cluster.Config{Restart: true})
	outside, pingpong := startRawStream(env.DialVIP(7)), startRawPingPong(env.DialVIP(7))
	time.Sleep(50 * time.Millisecond)
	for _, hop := range [][2]string{{"a", "b"}, {"b", "a"}} {
		if err := env.CrashNode(hop[1]); err != nil {
			t.Fatal(err)
		}
		env.WaitRestarted(hop[1], 15*time.Second)
		if h := env.Holder(); h != hop[0] {
			t.Fatalf("after %s crashed and came back the VIP is on %q, want %s", hop[1], h, hop[0])
		}
		moveBoth(t, env, hop[0], hop[1], "to the restarted server")
	}
	finishBoth(t, outside, pingpong)
}

// cutProxy stands between a and b's hand-off channel and cuts it (a reset
// both ways) once cutAt bytes have gone from a to b; cutAt 0 never cuts.
type cutProxy struct {
	ln     net.Listener
	dial   func(ctx context.Context) (net.Conn, error)
	cutAt  atomic.Int64
	toB    atomic.Int64 // bytes a->b of the latest session
	wasCut atomic.Bool
	wg     sync.WaitGroup
}

func (p *cutProxy) serve() {
	for {
		ca, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.session(ca.(*net.TCPConn))
		}()
	}
}

func (p *cutProxy) session(ca *net.TCPConn) {
	defer ca.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.dial(ctx)
	if err != nil {
		return
	}
	cb := c.(*net.TCPConn)
	defer cb.Close()
	p.toB.Store(0)
	cutAt := p.cutAt.Load()
	cut := func() {
		p.wasCut.Store(true)
		ca.SetLinger(0) // close with a reset: the cable is cut
		cb.SetLinger(0)
		ca.Close()
		cb.Close()
	}
	go func() {
		io.Copy(ca, cb)
		ca.CloseWrite()
	}()
	buf := make([]byte, 512) // small reads: the cut lands close to cutAt
	for {
		n, err := ca.Read(buf)
		if n > 0 {
			total := p.toB.Add(int64(n))
			if cutAt > 0 && total >= cutAt {
				// Forward up to the cut, then cut: the target has the start
				// of the transfer and no more.
				cb.Write(buf[:n-int(total-cutAt)])
				cut()
				return
			}
			if _, err := cb.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			cb.CloseWrite()
			return
		}
	}
}

// TestChannelCutMidTransfer cuts the hand-off channel in the middle of
// the transfer, between the servers, with a proxy that resets both sides
// of it: a has sent part of the states, b has received part. Both roll
// back; nothing is lost. (Killing a process would close its sockets, which
// the other tests already do; this cut leaves both servers running.)
func TestChannelCutMidTransfer(t *testing.T) {
	nstest.Privileged(t)
	// a reaches b's channel through the proxy, on a second address of the
	// client host.
	const proxyAddr = "192.0.2.3"
	env := labtest.Start(t, map[string][]string{"a": {"--peer", "b=" + proxyAddr}})
	client := env.Lab.Client
	if out, err := exec.Command("ip", "-n", client.Namespace, "addr", "add", proxyAddr+"/24", "dev", client.Interface).CombinedOutput(); err != nil {
		t.Fatalf("add the proxy's address: %v: %s", err, out)
	}
	p := &cutProxy{dial: func(ctx context.Context) (net.Conn, error) {
		return env.Dial(ctx, "tcp4", net.JoinHostPort(env.Lab.Servers[1].Addr.Addr().String(), "7070"))
	}}
	if err := nstest.Do(client.Namespace, func() error {
		var err error
		p.ln, err = net.Listen("tcp4", proxyAddr+":7070")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go p.serve()
	defer func() { p.ln.Close(); p.wg.Wait() }()

	// Enough idle connections that the transfer is many reads long.
	const idle = 200
	conns := make([]net.Conn, idle)
	for i := range conns {
		conns[i] = env.DialVIP(7)
	}
	outside, pingpong := startRawStream(env.DialVIP(7)), startRawPingPong(env.DialVIP(7))
	time.Sleep(50 * time.Millisecond)

	// An uncut hand-off through the proxy measures the transfer, so the cut
	// can land in its middle.
	handOffOK(t, env, idle+2)
	whole := p.toB.Load()
	cutAt := whole / 2
	if cutAt < 8<<10 {
		t.Fatalf("the whole hand-off sent only %d bytes a->b: too few to cut in the middle of the transfer", whole)
	}
	p.cutAt.Store(cutAt)
	res := env.HandOff("a", "b")
	if !p.wasCut.Load() {
		t.Fatalf("the proxy never cut (%d of %d bytes went through): %+v", p.toB.Load(), cutAt, res)
	}
	if res.OK || !res.RolledBack {
		t.Fatalf("a hand-off whose channel was cut: want a rollback, got %+v", res)
	}
	t.Logf("cut after %d of %d bytes a->b: %s", cutAt, whole, res.Error)
	// b notices the cut on its own (a reset) and lets the VIP go.
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, err := env.Cluster.Holder(context.Background())
		if err == nil && h == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the cut: holder %q, %v", h, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkRolledBack(t, env)
	// Every idle connection still echoes.
	for i, c := range conns {
		msg := []byte(fmt.Sprintf("idle %d\n", i))
		c.SetDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, len(msg))
		if _, err := c.Write(msg); err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
			t.Fatalf("idle connection %d: %q, %v", i, got, err)
		}
	}
	// And the channel, whole again, carries a hand-off.
	p.cutAt.Store(0)
	handOffOK(t, env, idle+2)
	outside.finish(t)
	pingpong.finish(t)
}
