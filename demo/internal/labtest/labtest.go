// Package labtest starts the one-host lab for tests: namespaces with a
// unique prefix, the sockshift binary built once, server processes in their
// namespaces, and helpers to dial the VIP from the client's namespace and to
// ask a server for a hand-off. Everything is removed when the test ends.
package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff/nstest"
)

var (
	buildOnce sync.Once
	buildExe  string
	buildErr  error
)

// Binary builds the sockshift command once per test binary. Its callers
// run the lab, so it skips (or fails under CI) without root.
func Binary(t testing.TB) string {
	t.Helper()
	nstest.Privileged(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sockshift-test-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildExe = filepath.Join(dir, "sockshift")
		out, err := exec.Command("go", "build", "-o", buildExe, "github.com/sockshift/sockshift/demo/cmd/sockshift").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildExe
}

// Prefix returns a fresh lab prefix (t + 6 hex digits).
func Prefix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return "t" + hex.EncodeToString(b)
}

// Env is a running lab with its server processes, for one test.
type Env struct {
	*cluster.Cluster
	t   testing.TB
	Exe string
}

// Start brings up a lab and starts servers a (holding the VIP) and b.
// nodeArgs adds flags per server (for example a --fault). Everything is
// removed when the test ends.
func Start(t testing.TB, nodeArgs map[string][]string) *Env {
	t.Helper()
	nstest.Privileged(t)
	exe := Binary(t)
	dir, err := os.MkdirTemp("", "ss") // short: control sockets live here
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Config{Prefix: Prefix(), Exe: exe, RunDir: dir, NodeArgs: nodeArgs})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("start the lab: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return &Env{Cluster: c, t: t, Exe: exe}
}

// StartNode starts a server's process and waits until it answers.
func (e *Env) StartNode(role string, hold bool, extra ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Cluster.StartNode(ctx, role, hold, extra...); err != nil {
		e.t.Fatal(err)
	}
}

// HandOff asks server from to hand everything to server to.
func (e *Env) HandOff(from, to string) node.HandoffResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.Cluster.HandOff(ctx, from, to)
	if err != nil {
		e.t.Fatalf("hand-off %s->%s: %v", from, to, err)
	}
	return res
}

// Holder returns the server holding the VIP.
func (e *Env) Holder() string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := e.Cluster.Holder(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// DialVIP connects to the VIP from the client's namespace.
func (e *Env) DialVIP(port int) net.Conn {
	e.t.Helper()
	return e.DialAddr(lab.VIP, port)
}

// DialChat connects from the client to the chat service, on its own
// address (lab.ChatVIP:6667).
func (e *Env) DialChat() net.Conn {
	e.t.Helper()
	return e.DialAddr(lab.ChatVIP, ChatPort)
}

// ChatPort is the chat service's port in the lab.
const ChatPort = 6667

// DialAddr connects from the client to addr:port (a service address, or a
// server's own); the connection closes with the test.
func (e *Env) DialAddr(addr netip.Addr, port int) net.Conn {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.Dial(ctx, "tcp4", net.JoinHostPort(addr.String(), fmt.Sprint(port)))
	if err != nil {
		e.t.Fatalf("dial %v:%d: %v", addr, port, err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// Dialer returns a dial function for client.Config that dials from the
// client's namespace.
func (e *Env) Dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		return e.Dial(ctx, "tcp4", addr)
	}
}
