package handoff_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sockshift/sockshift/handoff/nstest"
	"github.com/sockshift/sockshift/handoff/wire"
)

// TestKillWithoutTheDemo kills a server of Example's service (the library
// alone, as an outsider embeds it, with a StateDir) with SIGKILL at a step
// of a hand-off, restarts it as systemd would, and checks the rules of
// "What happens when a process dies": the service address ends on exactly
// one server, never two, and the connections a live process holds carry
// on with every line whole and in order.
func TestKillWithoutTheDemo(t *testing.T) {
	for _, c := range []struct {
		victim, step string
		survive      bool // the typing clients carry on
		holder       string
	}{
		// Killed after the target reported the sockets rebuilt: the
		// restarted source tells the waiting target to commit.
		{"a", "restore", true, "b"},
		{"a", "announce", true, "b"},
		// Killed after the release, before the target had them: the
		// connections died with it; its journal takes the address back.
		{"a", "dump", false, "a"},
		// The target killed before the commit: the source keeps all.
		{"b", "announce", true, "a"},
		{"b", "dump", true, "a"},
	} {
		t.Run(c.victim+"/"+c.step, func(t *testing.T) {
			nstest.Privileged(t)
			hosts := nstest.Segment(t, "ek", exClient+"/24", exA+"/24", exB+"/24")
			keyFile := filepath.Join(t.TempDir(), "key")
			if _, err := wire.GenerateKeyFile(keyFile); err != nil {
				t.Fatal(err)
			}
			dirs := map[string]string{"a": t.TempDir(), "b": t.TempDir()}
			ns := map[string]string{"a": hosts[1], "b": hosts[2]}
			addr := map[string]string{"a": exA, "b": exB}
			start := func(role string) *exServer {
				return startExServer(t, ns[role], role, addr[role], keyFile, dirs[role])
			}
			servers := map[string]*exServer{"a": start("a"), "b": start("b")}
			if got := servers["a"].do("take"); got != "ok took" {
				t.Fatal(got)
			}
			clients := []*lineClient{
				startLineClient(dialFrom(t, hosts[0], exVIP+":7007")),
				startLineClient(dialFrom(t, hosts[0], exVIP+":7007")),
			}
			time.Sleep(50 * time.Millisecond)

			src := servers["a"]
			src.do("hold " + c.step)
			fmt.Fprintln(src.in, "handoff-bg "+exB) // answered later, with "done"
			if got := src.line(); got != "at "+c.step {
				t.Fatalf("the hand-off did not stop at %s: %q", c.step, got)
			}
			killed := time.Now()
			servers[c.victim].kill(t)
			servers[c.victim] = start(c.victim)
			if c.victim == "b" {
				// The answer to "go" and the hand-off's end come in either
				// order: the released hand-off may finish first.
				fmt.Fprintln(src.in, "go")
				var done string
				for range 2 {
					if got := src.line(); strings.HasPrefix(got, "done") {
						done = got
					} else if got != "ok go" {
						t.Fatalf("after go: %q", got)
					}
				}
				if !strings.HasPrefix(done, "done err") || !strings.Contains(done, "rolled back") {
					t.Errorf("a hand-off to a target killed at %s: %q, want a rolled-back failure", c.step, done)
				}
			}

			// Exactly one holder within 2 s; never two at any sample.
			var holder string
			for {
				held := vipHolders(t, ns)
				if len(held) > 1 {
					t.Fatalf("the address is on %v", held)
				}
				if len(held) == 1 {
					holder = held[0]
					if holder == c.holder || time.Since(killed) > 2*time.Second {
						break
					}
				}
				if time.Since(killed) > 2*time.Second {
					t.Fatalf("2 s after the kill the address is on %v", held)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if holder != c.holder {
				t.Fatalf("the address ended on %s, want %s", holder, c.holder)
			}
			for time.Since(killed) < 500*time.Millisecond { // and it stays there
				if held := vipHolders(t, ns); len(held) != 1 || held[0] != holder {
					t.Fatalf("the address moved on to %v", held)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if c.survive {
				for i, cl := range clients {
					t.Logf("client %d: %d lines echoed", i, cl.finish(t))
				}
			}
			// The next hand-off works, with a new client on the way.
			other := map[string]string{"a": "b", "b": "a"}[holder]
			fresh := startLineClient(dialFrom(t, hosts[0], exVIP+":7007"))
			time.Sleep(20 * time.Millisecond)
			if got := servers[holder].do("handoff " + addr[other]); !strings.HasPrefix(got, "ok") {
				t.Fatalf("the next hand-off %s->%s: %q", holder, other, got)
			}
			time.Sleep(20 * time.Millisecond)
			fresh.finish(t)
		})
	}
}

// vipHolders lists the servers whose interface has the service address.
func vipHolders(t *testing.T, ns map[string]string) []string {
	t.Helper()
	var out []string
	for _, role := range []string{"a", "b"} {
		b, err := exec.Command("ip", "-n", ns[role], "-br", "addr", "show", "dev", "eth0").Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), " "+exVIP+"/") {
			out = append(out, role)
		}
	}
	return out
}

// kill ends the server with SIGKILL and waits until every thread of its
// process is gone (its sockets closed), as a crash would leave it.
func (s *exServer) kill(t *testing.T) {
	t.Helper()
	pid := s.cmd.Process.Pid
	s.cmd.Process.Kill()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		// The leader turns zombie first; the others hold the files until
		// they end too.
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil || len(tasks) == 0 {
			return
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(b)); err == nil && len(tasks) == 1 && len(f) > 2 && f[2] == "Z" {
			return
		}
	}
	t.Fatalf("server process %d outlived SIGKILL", pid)
}
