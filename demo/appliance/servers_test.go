package appliance_test

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/sockshift/sockshift/demo/internal/labtest"
)

// The demo with three servers: the console lists them; "to" names any of
// them, through the API and `sockshift handoff --to`; without "to" the
// services go round a -> b -> c -> a; the demo's clients and chat bots,
// attached all along, see no error; SIGINT leaves nothing behind.
func TestDemoWithThreeServers(t *testing.T) {
	exe := labtest.Binary(t)
	prefix := labtest.Prefix()
	addr := freePort(t)
	cmd := exec.Command(exe, "demo", "--listen", addr, "--lab-prefix", prefix, "--servers", "3")
	var logs labtest.Output
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		exec.Command(exe, "lab", "down", "--prefix", prefix).Run()
	})
	var st state
	for deadline := time.Now().Add(time.Minute); ; {
		var err error
		if st, err = getState(addr); err == nil && st.Holder == "a" && st.Client != nil && st.Client.Bytes > 0 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("the demo exited early: %v\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not come up: %v (%+v)\n%s", err, st, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(st.Nodes) != 3 || st.Nodes[2].Name != "c" || st.Nodes[2].Address != "192.0.2.3" {
		t.Fatalf("nodes %+v, want a, b, c", st.Nodes)
	}
	holderIs := func(step, want string) {
		t.Helper()
		st, err := getState(addr)
		if err != nil || st.Holder != want || st.holders()["chat"] != want {
			t.Fatalf("after %s: VIP on %q, services on %v (%v); want %s", step, st.Holder, st.holders(), err, want)
		}
	}
	post := func(body string) {
		t.Helper()
		resp, err := http.Post("http://"+addr+"/api/handoff", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			OK          bool   `json:"ok"`
			To          string `json:"to"`
			Connections int    `json:"connections"`
			Error       string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !rep.OK || rep.Connections == 0 {
			t.Fatalf("POST %s: %s %+v", body, resp.Status, rep)
		}
	}
	// The console draws every server, and the one that holds the VIP.
	b := newBrowser(t)
	topo := text("topo")
	b.run(t, "load the console",
		chromedp.Navigate("http://"+addr+"/"),
		waitJS(`["Server A", "Server B", "Server C"].every((s) => `+topo+`.includes(s)) && `+topo+`.includes("192.0.2.3")`),
		waitJS(`document.getElementById("topo-a").classList.contains("holds")`))
	if out, err := exec.Command(exe, "handoff", "--console", addr, "--to", "c").CombinedOutput(); err != nil {
		t.Fatalf("sockshift handoff --to c: %v\n%s", err, out)
	}
	holderIs("sockshift handoff --to c", "c")
	b.run(t, "server C holds the VIP, and the next hand-off goes to A",
		waitJS(`document.getElementById("topo-c").classList.contains("holds") && !document.getElementById("topo-a").classList.contains("holds")`),
		waitJS(topo+`.includes("ARP: 192.0.2.100 → Server C")`),
		waitJS(text("direction")+` === "Server C  →  Server A"`))
	post(`{"to":"b"}`)
	holderIs(`{"to":"b"}`, "b")
	for _, want := range []string{"c", "a", "b", "c", "a"} {
		post(`{}`)
		holderIs("{} (the next server)", want)
	}
	time.Sleep(time.Second)
	if st, err := getState(addr); err != nil || st.Client == nil || st.Client.Errors != 0 {
		t.Fatalf("the demo client after the hand-offs: %+v, %v\n%s", st.Client, err, logs.String())
	}
	if strings.Contains(logs.String(), "chat bot") {
		t.Fatalf("a chat bot saw a line lost, doubled or out of order, or lost its connection:\n%s", logs.String())
	}
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the demo after SIGINT: %v\n%s", err, logs.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("the demo did not stop after SIGINT\n%s", logs.String())
	}
	if left := leftovers(prefix); len(left) > 0 {
		t.Fatalf("left behind after SIGINT: %v", left)
	}
}
