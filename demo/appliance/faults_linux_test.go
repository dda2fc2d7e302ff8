package appliance_test

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/lab"
)

// consoleState is what these tests read of GET /api/state.
type consoleState struct {
	Holder   string `json:"holder"`
	Services []struct {
		Name, Address, Holder string
	} `json:"services"`
	Nodes []struct {
		Name      string   `json:"name"`
		Up        bool     `json:"up"`
		Recovered []string `json:"recovered"`
	} `json:"nodes"`
	Step *struct {
		Waiting string `json:"waiting"`
	} `json:"step"`
	Unheld []string `json:"unheld"`
}

func consoleStateOf(t *testing.T, base string) consoleState {
	t.Helper()
	resp, err := http.Get(base + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st consoleState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// postJSON posts body and returns the status with the decoded answer.
func postJSON(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// stepConsoleTo starts a step-mode hand-off on the console and steps it
// until the phase named waits.
func stepConsoleTo(t *testing.T, base, phase string) {
	t.Helper()
	if status, out := postJSON(t, base+"/api/handoff", `{"step":true}`); status != http.StatusAccepted {
		t.Fatalf("step-mode hand-off: %d %v", status, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st := consoleStateOf(t, base)
		switch {
		case st.Step == nil || st.Step.Waiting == "":
			time.Sleep(10 * time.Millisecond)
		case st.Step.Waiting == phase:
			return
		default:
			if status, out := postJSON(t, base+"/api/step", `{}`); status != http.StatusOK {
				t.Fatalf("step at %s: %d %v", st.Step.Waiting, status, out)
			}
		}
	}
	t.Fatalf("the step-mode hand-off never waited at %s", phase)
}

// killServer kills a server's process (SIGKILL) in its namespace.
func killServer(t *testing.T, base, role string) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", nsOf(t, base, role)).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// latestReport waits for the report of the hand-off that started after
// since.
func latestReport(t *testing.T, base string, since time.Time) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/api/handoffs/latest.json")
		if err == nil {
			var rep map[string]any
			ok := resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&rep) == nil
			resp.Body.Close()
			if ok {
				if ms, ok := rep["started_ms"].(float64); ok && time.UnixMilli(int64(ms)).After(since) {
					return rep
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no report of the hand-off")
	return nil
}

func str(v any) string { s, _ := v.(string); return s }

// holdersByIP reads which server has each service address on its
// interface, with ip(8), not the console.
func holdersByIP(t *testing.T, base string) map[string][]string {
	t.Helper()
	held := map[string][]string{}
	for _, role := range []string{"a", "b"} {
		out, err := exec.Command("ip", "-n", nsOf(t, base, role), "-br", "addr").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{lab.VIP.String(), lab.ChatVIP.String()} {
			if strings.Contains(string(out), " "+a+"/") {
				held[a] = append(held[a], role)
			}
		}
	}
	return held
}

// agree waits until the console's state and ip(8) say the same: each
// service address on exactly one server, the one the console names.
func agree(t *testing.T, base string, within time.Duration) consoleState {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, held := consoleStateOf(t, base), holdersByIP(t, base)
		ok := len(st.Services) == 2 && len(st.Unheld) == 0
		for _, sv := range st.Services {
			ok = ok && len(held[sv.Address]) == 1 && held[sv.Address][0] == sv.Holder
		}
		if ok {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the console says %+v, ip addr says %v", within, st, held)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConsoleAfterAKill kills a server mid-hand-off, as a crash would,
// and checks that the console's report and state say what happened: a
// source killed after the commit leaves a hand-off that worked (the
// target serves), a source killed after the release and before the
// commit one that did not; an abort after the point of no return is
// refused with 409; after an abort the next hand-off is not refused.
func TestConsoleAfterAKill(t *testing.T) {
	base := "http://" + startDemo(t)

	// The source dies after the commit: the report says ok, the
	// connections moved, and b holds both addresses.
	since := time.Now()
	stepConsoleTo(t, base, "resume")
	if status, out := postJSON(t, base+"/api/step", `{"abort":true}`); status != http.StatusConflict || !strings.Contains(str(out["error"]), "point of no return") {
		t.Errorf("abort after the commit: %d %v, want 409 naming the point of no return", status, out)
	}
	killServer(t, base, "a")
	rep := latestReport(t, base, since)
	if rep["ok"] != true || rep["to"] != "b" || rep["connections"].(float64) < 1 {
		t.Errorf("a hand-off whose source died after the commit: %v; want ok, to b, the connections moved", rep)
	}
	if st := agree(t, base, 5*time.Second); st.Holder != "b" {
		t.Errorf("after the source died past the commit, the holder is %q, want b", st.Holder)
	}

	// The source (b now) dies after the release, before the decision
	// (held at dump): not ok, and its journal brings the addresses back
	// to it when it restarts.
	since = time.Now()
	stepConsoleTo(t, base, "dump")
	killServer(t, base, "b")
	rep = latestReport(t, base, since)
	if rep["ok"] != false {
		t.Errorf("a hand-off whose source died before the commit reported ok: %v", rep)
	}
	st := agree(t, base, 5*time.Second)
	if st.Holder != "b" {
		t.Errorf("after b died at dump, the holder is %q, want b (its journal takes them back)", st.Holder)
	}
	recovered := false
	for _, n := range st.Nodes {
		recovered = recovered || (n.Name == "b" && len(n.Recovered) > 0)
	}
	if !recovered {
		t.Errorf("b restarted after dying mid-hand-off, yet its state says nothing recovered: %+v", st.Nodes)
	}

	// An abort before the commit rolls back; the next hand-off starts at
	// once, never 409.
	stepConsoleTo(t, base, "freeze")
	if status, out := postJSON(t, base+"/api/step", `{"abort":true}`); status != http.StatusOK {
		t.Fatalf("abort at freeze: %d %v", status, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st := consoleStateOf(t, base); st.Step == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the aborted hand-off never ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if status, out := postJSON(t, base+"/api/handoff", `{}`); status != http.StatusOK {
		t.Errorf("the hand-off right after an abort: %d %v", status, out)
	}
	agree(t, base, 5*time.Second)
}
