package appliance_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/handoff/nstest"
)

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type state struct {
	Holder string `json:"holder"`
	VIP    string `json:"vip"`
	Nodes  []struct {
		Name, Address, MAC string
		HoldsVIP           bool `json:"holds_vip"`
		Connections        int  `json:"connections"`
	} `json:"nodes"`
	Connections []struct {
		Service, Client, Node string
	} `json:"connections"`
	Client *struct {
		Bytes  uint64 `json:"bytes"`
		Errors uint64 `json:"errors"`
	} `json:"client"`
	Services []struct {
		Name, Holder string
	} `json:"services"`
}

// holders says where each service is.
func (st state) holders() map[string]string {
	out := map[string]string{}
	for _, s := range st.Services {
		out[s.Name] = s.Holder
	}
	return out
}

func getState(addr string) (state, error) {
	var st state
	resp, err := http.Get("http://" + addr + "/api/state")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("state: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// leftovers lists namespaces and processes that mention the prefix.
func leftovers(prefix string) []string {
	var out []string
	ns, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(ns), "\n") {
		if strings.HasPrefix(line, prefix+"-") {
			out = append(out, "namespace "+strings.Fields(line)[0])
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("/run/sockshift/"+prefix+"/")) {
			out = append(out, "process "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func TestScriptsDemoComesUpHandsOffAndCleansUp(t *testing.T) {
	nstest.Privileged(t)
	labtest.Binary(t) // fail early, with the build's message, if it does not build
	prefix := labtest.Prefix()
	addr := freePort(t)
	cmd := exec.Command("../../scripts/demo", "--listen", addr, "--lab-prefix", prefix)
	var logs labtest.Output
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		exec.Command("../../bin/sockshift", "lab", "down", "--prefix", prefix).Run()
	})

	var st state
	deadline := time.Now().Add(3 * time.Minute) // the first run builds the binary
	for {
		var err error
		if st, err = getState(addr); err == nil && st.Holder == "a" && st.Client != nil && st.Client.Bytes > 0 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("scripts/demo exited early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not come up: %v (%+v)\n%s", err, st, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st.VIP != "192.0.2.100" || len(st.Nodes) != 2 || len(st.Connections) == 0 {
		t.Fatalf("unexpected state: %+v", st)
	}
	// The demo's chat bots are in #lab too.
	for deadline := time.Now().Add(10 * time.Second); ; {
		chats := 0
		for _, c := range st.Connections {
			if c.Service == "chat" {
				chats++
			}
		}
		if chats >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("want the 2 chat bots connected, state has %d chat connections: %+v", chats, st.Connections)
		}
		time.Sleep(200 * time.Millisecond)
		st, _ = getState(addr)
	}

	for i, want := range []string{"b", "a"} {
		resp, err := http.Post("http://"+addr+"/api/handoff", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			OK          bool `json:"ok"`
			From, To    string
			Connections int    `json:"connections"`
			TotalUS     int64  `json:"total_us"`
			Error       string `json:"error"`
			Phases      []struct {
				Name string `json:"name"`
				US   int64  `json:"us"`
			} `json:"phases"`
		}
		json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !rep.OK || rep.To != want || rep.Connections == 0 || len(rep.Phases) == 0 || rep.TotalUS <= 0 {
			t.Fatalf("hand-off %d: %s %+v", i, resp.Status, rep)
		}
		if st, err := getState(addr); err != nil || st.Holder != want {
			t.Fatalf("after hand-off %d: holder %q (want %q), %v", i, st.Holder, want, err)
		}
	}
	checkBadInput(t, addr)
	time.Sleep(time.Second)
	if st, err := getState(addr); err != nil || st.Client == nil || st.Client.Errors != 0 {
		t.Fatalf("demo client after hand-offs: %+v, %v\n%s", st.Client, err, logs.String())
	}
	if strings.Contains(logs.String(), "chat bot") {
		t.Fatalf("a chat bot saw a line lost, doubled or out of order, or lost its connection:\n%s", logs.String())
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("scripts/demo after SIGINT: %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("scripts/demo did not stop after SIGINT\n%s", logs.String())
	}
	if left := leftovers(prefix); len(left) > 0 {
		t.Fatalf("left behind after SIGINT: %v", left)
	}
}

func TestDemoRefusesPortInUseAndLeavesNothing(t *testing.T) {
	nstest.Privileged(t)
	exe := labtest.Binary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	prefix := labtest.Prefix()
	out, err := exec.Command(exe, "demo", "--listen", ln.Addr().String(), "--lab-prefix", prefix).CombinedOutput()
	if err == nil {
		t.Fatalf("demo on a port in use should fail:\n%s", out)
	}
	if !strings.Contains(string(out), "not free") {
		t.Errorf("the error should say the port is not free:\n%s", out)
	}
	if left := leftovers(prefix); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestDemoRefusesLabAlreadyUpAndKeepsIt(t *testing.T) {
	nstest.Privileged(t)
	exe := labtest.Binary(t)
	prefix := labtest.Prefix()
	if out, err := exec.Command(exe, "lab", "up", "--prefix", prefix).CombinedOutput(); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(exe, "lab", "down", "--prefix", prefix).Run() })
	out, err := exec.Command(exe, "demo", "--listen", freePort(t), "--lab-prefix", prefix).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already up") {
		t.Fatalf("demo on a lab that is already up should refuse, saying so: %v\n%s", err, out)
	}
	// The lab was not the demo's to remove.
	if out, err := exec.Command(exe, "lab", "status", "--prefix", prefix).CombinedOutput(); err != nil {
		t.Fatalf("the existing lab was harmed: %v\n%s", err, out)
	}
	// lab up again is idempotent; down removes everything.
	if out, err := exec.Command(exe, "lab", "up", "--prefix", prefix).CombinedOutput(); err != nil {
		t.Fatalf("second lab up: %v\n%s", err, out)
	}
	if out, err := exec.Command(exe, "lab", "down", "--prefix", prefix).CombinedOutput(); err != nil {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	if left := leftovers(prefix); len(left) > 0 {
		t.Fatalf("left behind after lab down: %v", left)
	}
}

func TestCommandsRefuseWithoutRoot(t *testing.T) {
	nstest.Privileged(t)
	exe := labtest.Binary(t)
	// The binary lives in a private temp dir; let nobody reach it.
	os.Chmod(filepath.Dir(exe), 0o755)
	prefix := labtest.Prefix()
	for _, args := range [][]string{
		{"demo", "--listen", freePort(t), "--lab-prefix", prefix},
		{"lab", "up", "--prefix", prefix},
	} {
		cmd := exec.Command(exe, args...)
		asNobody(cmd)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "root") {
			t.Errorf("sockshift %s as nobody: want a clear error about root, got %v\n%s", args[0], err, out)
		}
		if lines := strings.Count(strings.TrimSpace(string(out)), "\n"); lines > 0 {
			t.Errorf("sockshift %s as nobody: want one sentence, got:\n%s", args[0], out)
		}
	}
	if left := leftovers(prefix); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// checkBadInput asks the demo, both services on a, for what it cannot do
// (400, nothing moves) and for services alone without a target (each
// moves from wherever it is to the other server), and leaves both on a.
func checkBadInput(t *testing.T, addr string) {
	t.Helper()
	post := func(body string) (int, string) {
		resp, err := http.Post("http://"+addr+"/api/handoff", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var rep struct {
			OK    bool   `json:"ok"`
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&rep)
		if (resp.StatusCode == http.StatusOK) != rep.OK {
			t.Errorf("POST %s: %s with ok %v", body, resp.Status, rep.OK)
		}
		return resp.StatusCode, rep.Error
	}
	expect := func(after string, want map[string]string) {
		t.Helper()
		st, err := getState(addr)
		if got := st.holders(); err != nil || !maps.Equal(got, want) {
			t.Fatalf("after %s the services are on %v (%v), want %v", after, got, err, want)
		}
	}
	expect("the hand-offs", map[string]string{"echo": "a", "chat": "a"})
	for body, want := range map[string]string{
		`{"to":"a"}`:                     "already holds",
		`{"to":"a","services":["chat"]}`: "already holds",
		`{"to":"c"}`:                     `no server "c"`,
	} {
		if code, msg := post(body); code != http.StatusBadRequest || !strings.Contains(msg, want) {
			t.Errorf("POST %s: %d %q, want 400 saying %q", body, code, msg, want)
		}
	}
	expect("the refused requests", map[string]string{"echo": "a", "chat": "a"})
	// Without "to", chat moves from wherever it is: to b, then back to
	// a (it once went to b again, from the VIP's holder, and got 502).
	for _, want := range []string{"b", "a", "b"} {
		if code, msg := post(`{"services":["chat"]}`); code != http.StatusOK {
			t.Fatalf("chat alone: %d %s", code, msg)
		}
		expect("chat alone", map[string]string{"echo": "a", "chat": want})
	}
	// Both named, on different servers: each goes to the other.
	if code, msg := post(`{"services":["echo","chat"]}`); code != http.StatusOK {
		t.Fatalf("both named: %d %s", code, msg)
	}
	expect("both named", map[string]string{"echo": "b", "chat": "a"})
	if code, msg := post(`{"to":"a"}`); code != http.StatusOK {
		t.Fatalf("gathering on a: %d %s", code, msg)
	}
	expect("gathering on a", map[string]string{"echo": "a", "chat": "a"})
}
