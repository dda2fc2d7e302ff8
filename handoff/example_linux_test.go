package handoff_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/handoff"
	"github.com/sockshift/sockshift/handoff/nstest"
	"github.com/sockshift/sockshift/handoff/wire"
)

// The example's servers run as children of the test binary, each inside
// its own namespace, as on their own hosts: a node's sockets, addresses and
// packet sockets belong to the namespace it runs in.
const (
	exClient = "198.51.100.10"
	exA      = "198.51.100.1"
	exB      = "198.51.100.2"
	exVIP    = "198.51.100.100"
	childEnv = "SOCKSHIFT_EXAMPLE_NODE" // name,addr,keyfile[,statedir]: run as a server
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		if err := childServer(spec); err != nil {
			fmt.Fprintln(os.Stderr, "example server:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// faultHook fails the step it is set to; it is how the test injects a
// fault on either side.
type faultHook struct {
	mu   sync.Mutex
	step handoff.Step
	// hold is a step to stop at (announced with "at STEP" on stdout)
	// until go closes: the test kills a process right there.
	hold handoff.Step
	goOn chan struct{}
}

func (h *faultHook) set(step handoff.Step) { h.mu.Lock(); h.step = step; h.mu.Unlock() }

func (h *faultHook) holdAt(step handoff.Step) {
	h.mu.Lock()
	h.hold, h.goOn = step, make(chan struct{})
	h.mu.Unlock()
}

func (h *faultHook) release() {
	h.mu.Lock()
	if h.goOn != nil {
		close(h.goOn)
	}
	h.hold, h.goOn = "", nil
	h.mu.Unlock()
}

func (h *faultHook) At(_ context.Context, step handoff.Step) error {
	h.mu.Lock()
	hold, goOn := h.hold, h.goOn
	fault := h.step != "" && h.step == step
	h.mu.Unlock()
	if hold == step && goOn != nil {
		fmt.Println("at", step)
		<-goOn
	}
	if fault {
		return errors.New("injected fault")
	}
	return nil
}

func (h *faultHook) Skip(handoff.Step) bool { return false }

// childServer runs the example's server and obeys one command per line on
// stdin: "take", "handoff PEER [STEP]" (a fault at STEP of this hand-off),
// "fault STEP" (this node's fault, "-" for none). It answers each with one
// line, "ok ..." or "err ...".
func childServer(spec string) error {
	f := strings.Split(spec, ",")
	if len(f) != 3 && len(f) != 4 {
		return fmt.Errorf("bad %s %q", childEnv, spec)
	}
	stateDir := ""
	if len(f) == 4 {
		stateDir = f[3]
	}
	key, err := wire.LoadKeyFile(f[2])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook := &faultHook{}
	n, err := runLineServer(ctx, handoff.Config{Name: f[0], Addr: netip.MustParseAddr(f[1]), Interface: "eth0",
		VIP: netip.MustParseAddr(exVIP), Key: key, Hook: hook, StateDir: stateDir})
	if err != nil {
		return err
	}
	defer n.Close()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		cmd := strings.Fields(sc.Text())
		switch {
		case len(cmd) == 1 && cmd[0] == "take":
			answer(n.TakeVIP(), "took")
		case len(cmd) >= 2 && cmd[0] == "handoff":
			opts := &handoff.Options{}
			if len(cmd) == 3 {
				h := &faultHook{step: handoff.Step(cmd[2])}
				opts.Hook = h
			}
			rep, err := n.HandOff(ctx, netip.MustParseAddr(cmd[1]), opts)
			answer(err, fmt.Sprintf("moved %d stayed %d", rep.Connections, len(rep.Stayed)))
		case len(cmd) == 2 && cmd[0] == "handoff-bg":
			// Answered later, with "done ...": it may be held at a step.
			go func() {
				rep, err := n.HandOff(ctx, netip.MustParseAddr(cmd[1]), nil)
				fmt.Print("done ")
				answer(err, fmt.Sprintf("moved %d stayed %d", rep.Connections, len(rep.Stayed)))
			}()
		case len(cmd) == 2 && cmd[0] == "hold":
			hook.holdAt(handoff.Step(cmd[1]))
			answer(nil, "hold "+cmd[1])
		case len(cmd) == 1 && cmd[0] == "go":
			hook.release()
			answer(nil, "go")
		case len(cmd) == 2 && cmd[0] == "fault":
			hook.set(handoff.Step(strings.TrimPrefix(cmd[1], "-")))
			answer(nil, "fault "+cmd[1])
		default:
			answer(fmt.Errorf("unknown command %q", sc.Text()), "")
		}
	}
	return sc.Err()
}

func answer(err error, ok string) {
	if err != nil {
		fmt.Println("err", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	fmt.Println("ok", ok)
}

// exServer is a running child server.
type exServer struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startExServer(t *testing.T, ns, name, addr, keyFile string, stateDir ...string) *exServer {
	t.Helper()
	spec := name + "," + addr + "," + keyFile
	if len(stateDir) > 0 {
		spec += "," + stateDir[0]
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+spec)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close() // the child returns at the end of its input
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	s := &exServer{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	if line := s.line(); line != "ready" {
		t.Fatalf("server %s: %q", name, line)
	}
	return s
}

func (s *exServer) line() string {
	s.t.Helper()
	if !s.out.Scan() {
		s.t.Fatalf("server ended: %v", s.out.Err())
	}
	return s.out.Text()
}

// do sends a command and returns the answer.
func (s *exServer) do(cmd string) string {
	s.t.Helper()
	fmt.Fprintln(s.in, cmd)
	return s.line()
}

// lineClient writes numbered lines of a few words (one-word ones too),
// some in two pieces with a pause between, and checks every echoed line
// comes back once, whole and in order.
type lineClient struct {
	c       net.Conn
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	sent    int
	checked int
	err     error
}

func dialFrom(t *testing.T, ns, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	err := nstest.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp4", addr, 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func exLine(i int) string {
	if i%3 == 0 {
		return fmt.Sprintf("w%d\n", i) // one word
	}
	return fmt.Sprintf("line %d of the example %s\n", i, strings.Repeat("x", i%50))
}

func startLineClient(c net.Conn) *lineClient {
	l := &lineClient{c: c, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			line := exLine(i)
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			half := len(line) / 2
			_, err := io.WriteString(c, line[:half])
			if i%7 == 0 {
				time.Sleep(3 * time.Millisecond) // a half-typed line, maybe across a switch
			}
			if err == nil {
				_, err = io.WriteString(c, line[half:])
			}
			if err != nil {
				l.fail(err)
				return
			}
			l.mu.Lock()
			l.sent++
			l.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	go func() {
		defer close(l.done)
		r := bufio.NewReader(c)
		for i := 0; ; i++ {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := r.ReadString('\n')
			if err != nil {
				l.fail(fmt.Errorf("after %d lines: %w", i, err))
				return
			}
			if want := exLine(i); got != want {
				l.fail(fmt.Errorf("line %d: got %q, want %q", i, got, want))
				return
			}
			l.mu.Lock()
			l.checked++
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *lineClient) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

// finish stops writing and waits until every line sent came back.
func (l *lineClient) finish(t *testing.T) int {
	t.Helper()
	close(l.stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		l.mu.Lock()
		sent, checked, err := l.sent, l.checked, l.err
		l.mu.Unlock()
		if err != nil {
			t.Fatalf("line client: %v", err)
		}
		if checked >= sent && sent > 0 {
			return checked
		}
		if time.Now().After(deadline) {
			t.Fatalf("line client: %d lines sent, %d came back", sent, checked)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startExample runs Example's service on two servers, a and b, each in
// its own namespace of one segment (prefix names them), a holding the
// service address; it returns the namespaces (client, a, b) and the
// servers by address.
func startExample(t *testing.T, prefix string) ([]string, map[string]*exServer) {
	t.Helper()
	nstest.Privileged(t)
	hosts := nstest.Segment(t, prefix, exClient+"/24", exA+"/24", exB+"/24")
	keyFile := filepath.Join(t.TempDir(), "key")
	if _, err := wire.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	servers := map[string]*exServer{
		exA: startExServer(t, hosts[1], "a", exA, keyFile),
		exB: startExServer(t, hosts[2], "b", exB, keyFile),
	}
	if got := servers[exA].do("take"); got != "ok took" {
		t.Fatal(got)
	}
	return hosts, servers
}

// TestExampleHandsOff runs Example's service on two servers in their own
// namespaces and moves its clients back and forth while they type: every
// line comes back once, whole, in order; a failure at each step on either
// side rolls back and the clients never notice; a client of a server's
// own address stays there.
func TestExampleHandsOff(t *testing.T) {
	hosts, servers := startExample(t, "ex")
	clients := []*lineClient{
		startLineClient(dialFrom(t, hosts[0], exVIP+":7007")),
		startLineClient(dialFrom(t, hosts[0], exVIP+":7007")),
	}
	direct := startLineClient(dialFrom(t, hosts[0], exA+":7007"))
	time.Sleep(50 * time.Millisecond)

	from, to := exA, exB
	for i := 0; i < 6; i++ {
		want := "ok moved 2 stayed 0"
		if from == exA {
			want = "ok moved 2 stayed 1" // the direct client stays on a
		}
		if got := servers[from].do("handoff " + to); got != want {
			t.Fatalf("hand-off %d %s->%s: %q, want %q", i, from, to, got, want)
		}
		from, to = to, from
		time.Sleep(20 * time.Millisecond)
	}

	// A failure at each step before the commit, on the source, rolls back.
	for _, step := range handoff.Steps()[:7] {
		if got := servers[exA].do("handoff " + exB + " " + string(step)); !strings.HasPrefix(got, "err") || !strings.Contains(got, "rolled back") {
			t.Fatalf("fault at %s: %q, want a rolled-back failure", step, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// And on the target.
	for _, step := range []string{"target-prepare", "target-restore"} {
		servers[exB].do("fault " + step)
		if got := servers[exA].do("handoff " + exB); !strings.HasPrefix(got, "err") {
			t.Fatalf("target fault at %s: %q, want a failure", step, got)
		}
		servers[exB].do("fault -")
		time.Sleep(10 * time.Millisecond)
	}
	// The clients were never touched: the next hand-off moves them.
	if got := servers[exA].do("handoff " + exB); got != "ok moved 2 stayed 1" {
		t.Fatalf("after the rollbacks: %q", got)
	}
	time.Sleep(50 * time.Millisecond)
	for i, c := range clients {
		t.Logf("client %d: %d lines echoed", i, c.finish(t))
	}
	t.Logf("direct client of a: %d lines echoed", direct.finish(t))
}

// TestExampleTimesOutIdleClients: Example's service lets a client go after
// lineIdle of silence, a deadline it sets through its Gate. Through
// hand-offs every 200 ms, a silent client is let go (its idle time runs on
// across the moves, in the snapshot), and a typing one never is.
func TestExampleTimesOutIdleClients(t *testing.T) {
	hosts, servers := startExample(t, "ei")
	silent := dialFrom(t, hosts[0], exVIP+":7007")
	connected := time.Now()
	typing := startLineClient(dialFrom(t, hosts[0], exVIP+":7007"))
	ended := make(chan time.Duration, 1)
	go func() {
		silent.SetReadDeadline(time.Now().Add(20 * time.Second))
		io.Copy(io.Discard, silent) // until the server lets it go
		ended <- time.Since(connected)
	}()
	from, to := exA, exB
	var after time.Duration
	for deadline := time.Now().Add(2*lineIdle + time.Second); time.Now().Before(deadline); {
		if got := servers[from].do("handoff " + to); !strings.HasPrefix(got, "ok") {
			t.Fatalf("hand-off %s->%s: %q", from, to, got)
		}
		from, to = to, from
		select {
		case after = <-ended:
		default:
		}
		time.Sleep(200 * time.Millisecond)
	}
	if after == 0 {
		t.Fatalf("the silent client is still connected %v after it came, through hand-offs every 200 ms (its idle limit: %v)", time.Since(connected), lineIdle)
	}
	if after < lineIdle {
		t.Errorf("the silent client was let go after %v, before its idle limit %v", after, lineIdle)
	}
	t.Logf("silent client let go after %v; typing client: %d lines echoed", after.Round(time.Millisecond), typing.finish(t))
}
