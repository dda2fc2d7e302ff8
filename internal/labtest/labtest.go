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
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff/wire"
	"github.com/sockshift/sockshift/internal/nstest"
)

var (
	buildOnce sync.Once
	buildExe  string
	buildErr  error
)

// Binary builds the sockshift command once per test binary.
func Binary(t testing.TB) string {
	t.Helper()
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

// Env is a running lab with its server processes.
type Env struct {
	t   testing.TB
	Lab *lab.Lab
	Exe string
	Dir string
	Key string

	mu    sync.Mutex
	procs map[string]*exec.Cmd
}

// Start brings up a lab and starts servers a (holding the VIP) and b.
// nodeArgs adds flags per server (for example a --fault).
func Start(t testing.TB, nodeArgs map[string][]string) *Env {
	t.Helper()
	nstest.Privileged(t)
	exe := Binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := Prefix()
	l, err := lab.Up(ctx, prefix)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	e := &Env{t: t, Lab: l, Exe: exe, Dir: t.TempDir(), procs: map[string]*exec.Cmd{}}
	t.Cleanup(func() {
		e.StopAll()
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := lab.Down(dctx, prefix); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	e.Key = filepath.Join(e.Dir, "key")
	if _, err := wire.GenerateKeyFile(e.Key); err != nil {
		t.Fatal(err)
	}
	e.StartNode("a", true, nodeArgs["a"]...)
	e.StartNode("b", false, nodeArgs["b"]...)
	return e
}

func (e *Env) host(role string) (lab.Host, lab.Host) {
	if role == "a" {
		return e.Lab.A, e.Lab.B
	}
	return e.Lab.B, e.Lab.A
}

// Control returns the control client of a server.
func (e *Env) Control(role string) *node.Client {
	return node.NewClient(filepath.Join(e.Dir, role+".sock"))
}

// StartNode starts a server's process and waits until it answers.
func (e *Env) StartNode(role string, hold bool, extra ...string) {
	e.t.Helper()
	h, peer := e.host(role)
	args := []string{"netns", "exec", h.Namespace, e.Exe, "node", "--name", role,
		"--iface", h.Interface, "--addr", h.Addr.Addr().String(), "--vip", lab.VIP.String(),
		"--peer", peer.Role + "=" + peer.Addr.Addr().String(), "--key-file", e.Key,
		"--control", filepath.Join(e.Dir, role+".sock")}
	if hold {
		args = append(args, "--hold")
	}
	args = append(args, extra...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.t.Fatalf("start node %s: %v", role, err)
	}
	e.mu.Lock()
	e.procs[role] = cmd
	e.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.Control(role).State(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("node %s did not come up: %v", role, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// KillNode kills a server's process at once (SIGKILL), as a crash would.
func (e *Env) KillNode(role string) {
	e.mu.Lock()
	cmd := e.procs[role]
	delete(e.procs, role)
	e.mu.Unlock()
	if cmd != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}
}

// StopAll stops every server process.
func (e *Env) StopAll() {
	e.mu.Lock()
	procs := e.procs
	e.procs = map[string]*exec.Cmd{}
	e.mu.Unlock()
	for _, cmd := range procs {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
}

// HandOff asks server from to hand everything to server to.
func (e *Env) HandOff(from, to string) node.HandoffResult {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := e.Control(from).HandOff(ctx, to)
	if err != nil {
		e.t.Fatalf("hand-off %s->%s: %v", from, to, err)
	}
	return res
}

// Holder returns the server holding the VIP, by asking both.
func (e *Env) Holder() string {
	e.t.Helper()
	holder := ""
	for _, role := range []string{"a", "b"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := e.Control(role).State(ctx)
		cancel()
		if err == nil && st.HoldsVIP {
			if holder != "" {
				e.t.Fatalf("both servers hold the VIP")
			}
			holder = role
		}
	}
	return holder
}

// DialVIP connects to the VIP from the client's namespace. The socket
// belongs to that namespace; the test uses it from anywhere.
func (e *Env) DialVIP(port int) net.Conn {
	e.t.Helper()
	var c net.Conn
	err := nstest.Do(e.Lab.Client.Namespace, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", net.JoinHostPort(lab.VIP.String(), fmt.Sprint(port)), 5*time.Second)
		return err
	})
	if err != nil {
		e.t.Fatalf("dial VIP: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// Dialer returns a dial function for client.Config that dials from the
// client's namespace.
func (e *Env) Dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var c net.Conn
		err := nstest.Do(e.Lab.Client.Namespace, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, "tcp4", addr)
			return err
		})
		return c, err
	}
}
