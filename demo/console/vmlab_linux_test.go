package console_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/handoff/nsexec"
	"github.com/sockshift/sockshift/handoff/nstest"
	"github.com/sockshift/sockshift/handoff/wire"
	"github.com/sockshift/sockshift/web"
)

// The VM lab's provisioning, replayed in the one-host lab: the configs
// rendered by the same script (vagrant/provision/render-config.sh) with
// the lab's addresses, the servers started by the same start script as
// the systemd unit, as an unprivileged user holding only the unit's three
// capabilities (setpriv does what AmbientCapabilities= does), and the
// console with the client VM's command line, inside the client's
// namespace, as the client VM runs it. The test drives the console's API
// as a person's browser would (through the client's namespace) and hands
// a live connection off and back.

// unitCaps are the node unit's AmbientCapabilities and CapabilityBoundingSet.
const unitCaps = "-all,+net_admin,+net_raw,+net_bind_service"

func TestVMLabConfigsHandOffThroughConsole(t *testing.T) {
	nstest.Privileged(t)
	nstest.NeedTool(t, "setpriv", "util-linux")
	nstest.NeedTool(t, "bash", "bash")
	exe := labtest.Binary(t)
	provision, err := filepath.Abs("../../vagrant/provision")
	if err != nil {
		t.Fatal(err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody to run the servers as: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prefix := labtest.Prefix()
	l, err := lab.Up(ctx, prefix)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		if err := lab.Down(dctx, prefix); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})

	// /etc/sockshift, as provisioning makes it: the key and the console's
	// token readable by the service user only.
	etc := t.TempDir()
	os.Chmod(etc, 0o755) // t.TempDir's parent too: nobody must reach the files
	os.Chmod(filepath.Dir(etc), 0o755)
	// Installed where the service user can run it, as /usr/local/bin is.
	bin := filepath.Join(etc, "sockshift")
	if b, err := os.ReadFile(exe); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatalf("install the binary: %v", err)
	}
	exe = bin
	keyFile := filepath.Join(etc, "key")
	if _, err := wire.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(etc, "console-token")
	token := randomHex(16)
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	for _, f := range []string{keyFile, tokenFile} {
		if err := os.Chown(f, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	render := func(name string, args ...string) string {
		out, err := exec.Command("bash", append([]string{filepath.Join(provision, "render-config.sh")}, args...)...).Output()
		if err != nil {
			t.Fatalf("render-config.sh %v: %v", args, err)
		}
		p := filepath.Join(etc, name)
		os.WriteFile(p, out, 0o644)
		return p
	}
	vip := lab.VIP.String()
	hosts := map[string]lab.Host{"a": l.Servers[0], "b": l.Servers[1]}
	startNode := map[string]func() func(){}
	for _, role := range []string{"a", "b"} {
		h, peer, hold := hosts[role], hosts["b"], "true"
		if role == "b" {
			peer, hold = hosts["a"], "false"
		}
		conf := render(role+".conf", "node", role, h.Addr.Addr().String(), peer.Role, peer.Addr.Addr().String(), vip, h.Interface, keyFile, hold)
		run := filepath.Join(etc, "run-"+role) // RuntimeDirectory=
		os.Mkdir(run, 0o755)
		os.Chown(run, uid, gid)
		startNode[role] = func() func() {
			return start(t, "server "+role, h.Namespace, []string{"RUNTIME_DIRECTORY=" + run, "SOCKSHIFT=" + exe},
				"setpriv", "--reuid="+nobody.Uid, "--regid="+nobody.Gid, "--clear-groups", "--no-new-privs",
				"--inh-caps="+unitCaps, "--ambient-caps="+unitCaps, "--bounding-set="+unitCaps,
				"--", filepath.Join(provision, "node-start.sh"), conf)
		}
	}
	stopA := startNode["a"]()
	startNode["b"]()
	cl := l.Client
	conf := render("console.conf", "console", "0.0.0.0:8080", l.Servers[0].Addr.Addr().String(), l.Servers[1].Addr.Addr().String(), vip, cl.Interface, keyFile, tokenFile)
	start(t, "console", cl.Namespace, nil,
		"setpriv", "--reuid="+nobody.Uid, "--regid="+nobody.Gid, "--clear-groups", "--no-new-privs",
		"--inh-caps=-all", "--bounding-set=-all",
		"--", exe, "console", "--config", conf)

	// The browser, on the client machine.
	browser := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, cl.Namespace, "127.0.0.1:8080")
		},
	}}
	var st web.State
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := getJSON(browser, "/api/state", &st)
		if err == nil && st.Holder == "a" && len(st.Nodes) == 2 && st.Nodes[0].Up && st.Nodes[1].Up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the console never showed both servers up with a holding the VIP: %+v, %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.VIP != vip || st.Nodes[0].Address != l.Servers[0].Addr.Addr().String() || st.Nodes[1].MAC != l.Servers[1].MAC.String() {
		t.Fatalf("state: %+v", st)
	}
	if st.ClientHost == nil || st.ClientHost.Address != cl.Addr.Addr().String() || st.ClientHost.MAC != cl.MAC.String() {
		t.Fatalf("client host: %+v", st.ClientHost)
	}
	if !st.Features.Step {
		t.Error("the console offers no step mode")
	}

	// The nodes' control API is on the lab network: without the token
	// derived from the key, it refuses.
	for _, h := range []lab.Host{l.Servers[0], l.Servers[1]} {
		raw := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialIn(ctx, cl.Namespace, net.JoinHostPort(h.Addr.Addr().String(), "7071"))
		}}}
		resp, err := raw.Post("http://node/handoff", "application/json", strings.NewReader(`{"to":"b"}`))
		if err != nil {
			t.Fatalf("control API of %s: %v", h.Role, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("control API of %s without the token: %s, want 401", h.Role, resp.Status)
		}
	}
	// The console itself refuses changes without its token.
	if code, _ := post(browser, "/api/handoff", "", `{"to":"b"}`, nil); code != http.StatusUnauthorized {
		t.Fatalf("hand-off without the console's token: %d, want 401", code)
	}

	// A live client connection: numbered round trips, each echoed exactly,
	// all through both hand-offs.
	conn, err := dialIn(ctx, cl.Namespace, net.JoinHostPort(vip, "7"))
	if err != nil {
		t.Fatalf("dial the VIP: %v", err)
	}
	defer conn.Close()
	var rounds atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var pingErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			msg := fmt.Appendf(nil, "round %08d %s\n", i, strings.Repeat("x", 40))
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write(msg); err != nil {
				pingErr = fmt.Errorf("round %d: write: %w", i, err)
				return
			}
			if _, err := io.ReadFull(conn, buf[:len(msg)]); err != nil {
				pingErr = fmt.Errorf("round %d: read: %w", i, err)
				return
			}
			if !bytes.Equal(buf[:len(msg)], msg) {
				pingErr = fmt.Errorf("round %d: echoed %q, sent %q", i, buf[:len(msg)], msg)
				return
			}
			rounds.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	waitRounds := func(n int64) {
		t.Helper()
		want := rounds.Load() + n
		for deadline := time.Now().Add(10 * time.Second); rounds.Load() < want; {
			if time.Now().After(deadline) || pingErr != nil {
				t.Fatalf("the client stalled at %d round trips: %v", rounds.Load(), pingErr)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitRounds(10)

	for _, to := range []string{"b", "a", "b"} {
		var rep web.Report
		code, err := post(browser, "/api/handoff", token, `{"to":"`+to+`"}`, &rep)
		if err != nil || code != http.StatusOK || !rep.OK || rep.To != to || rep.Connections < 1 {
			t.Fatalf("hand-off to %s through the console: %d %+v %v", to, code, rep, err)
		}
		if len(rep.Phases) == 0 || len(rep.Moved) == 0 {
			t.Errorf("hand-off to %s: no phases or TCP state in the report: %+v", to, rep)
		}
		waitRounds(20)
		if err := getJSON(browser, "/api/state", &st); err != nil {
			t.Fatal(err)
		}
		if st.Holder != to || len(st.Connections) == 0 || st.Connections[0].Node != to {
			t.Fatalf("after the hand-off to %s: holder %q, connections %+v", to, st.Holder, st.Connections)
		}
		if st.ClientHost.ARPMAC != hosts[to].MAC.String() {
			t.Errorf("after the hand-off to %s the client's ARP entry is %q, want %s's MAC %s", to, st.ClientHost.ARP, to, hosts[to].MAC)
		}
	}

	// systemd restarts a server that died. Server A's config says it holds
	// the VIP, but only at its first start: restarted while B serves, it
	// must leave the VIP (and the connection) with B.
	stopA()
	startNode["a"]()
	for deadline := time.Now().Add(20 * time.Second); ; {
		err := getJSON(browser, "/api/state", &st)
		if err == nil && st.Nodes[0].Up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server a did not come back: %+v %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Holder != "b" || st.Nodes[0].HoldsVIP {
		t.Fatalf("after server a restarted: holder %q, a holds the VIP: %v; want b alone", st.Holder, st.Nodes[0].HoldsVIP)
	}
	waitRounds(20)

	close(stop)
	wg.Wait()
	if pingErr != nil {
		t.Fatalf("the client connection did not survive: %v", pingErr)
	}
	t.Logf("%d round trips, every byte echoed, across three hand-offs through `sockshift console`", rounds.Load())
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// start runs `ip netns exec NS args...` in its own process group and stops
// it (SIGTERM, then SIGKILL) when the test ends; its output goes to the
// test's log if the test fails.
func start(t *testing.T, what, ns string, env []string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out labtest.Output
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", what, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s output:\n%s", what, out.String())
		}
	})
	return stop
}

func dialIn(ctx context.Context, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := nsexec.Do(ns, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	return c, err
}

func getJSON(c *http.Client, path string, v any) error {
	resp, err := c.Get("http://console" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func post(c *http.Client, path, token, body string, v any) (int, error) {
	req, _ := http.NewRequest(http.MethodPost, "http://console"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return resp.StatusCode, err
		}
	}
	return resp.StatusCode, nil
}
