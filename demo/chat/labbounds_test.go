package chat_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
)

// rssOf is a process's resident set, in bytes, from /proc.
func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss of %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if kb, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss of %d: %q: %w", pid, kb, err)
			}
			return n << 10, nil
		}
	}
	return 0, fmt.Errorf("rss of %d: no VmRSS", pid)
}

// peakRSS samples the servers' resident sets until stop is closed.
type peakRSS struct {
	base, peak map[string]int64
	stop, done chan struct{}
}

// watchRSS samples the servers' resident sets until the result's end.
func watchRSS(t *testing.T, env *labtest.Env, roles ...string) *peakRSS {
	p := &peakRSS{base: map[string]int64{}, peak: map[string]int64{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, r := range roles {
		n, err := rssOf(env.PID(r))
		if err != nil {
			t.Fatal(err)
		}
		p.base[r], p.peak[r] = n, n
	}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, r := range roles {
				if n, err := rssOf(env.PID(r)); err == nil {
					p.peak[r] = max(p.peak[r], n)
				}
			}
		}
	}()
	t.Cleanup(p.end)
	return p
}

// end stops the sampling; peak is then still.
func (p *peakRSS) end() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// A client that sends 100 MB without a newline, through two hand-offs:
// both hand-offs succeed with it on board (its line's progress moves), it
// is dropped with an ERROR once its line passes 64 KiB, the honest
// clients lose no line, and neither server's resident set grows by more
// than the stated bound (README: memory per connection).
func TestFloodThroughHandOffs(t *testing.T) {
	// Default PINGs: a client whose line is open cannot answer one.
	env := labtest.Start(t, nil)
	talkers := []*ircClient{labUser(t, env, "talk0", "#lab"), labUser(t, env, "talk1", "#lab")}
	f := labUser(t, env, "flooder", "#lab")
	f.noPong = true // its PONG would end its line
	rss := watchRSS(t, env, "a", "b")

	sent := make([]int, len(talkers))
	var wg sync.WaitGroup
	quit := make(chan struct{})
	var once sync.Once
	stopTalking := func() { once.Do(func() { close(quit) }); wg.Wait() }
	t.Cleanup(stopTalking) // before their connections close, on any failure
	for i, c := range talkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-quit:
					sent[i] = n
					return
				case <-time.After(100 * time.Millisecond):
				}
				c.send("PRIVMSG #lab :%s %d", c.nick, n)
			}
		}()
	}
	flooded := make(chan int64, 1)
	go func() { n, _ := flood(f.c, 100<<20); flooded <- n }()
	f.expect("417", "flooder") // its line is open: what follows is dropped

	from, to := "a", "b"
	for i := range 2 {
		res := env.HandOff(from, to)
		if !res.OK || res.Connections != 3 {
			t.Fatalf("hand-off %d %s->%s with the flood running: ok %v, %d connections (want 3): %s", i, from, to, res.OK, res.Connections, res.Error)
		}
		t.Logf("hand-off %d: %d µs freeze to resume", i, res.TotalUS)
		from, to = to, from
		time.Sleep(300 * time.Millisecond)
	}
	f.expect("ERROR", "Closing Link: 192.0.2.10 (Input line too long)")
	select {
	case n := <-flooded:
		t.Logf("the flooder got %d KiB of its 100 MB in before it was dropped", n>>10)
	case <-time.After(30 * time.Second):
		t.Fatal("the flooder's writes never failed")
	}
	stopTalking()
	for _, r := range talkers {
		r.expect("QUIT", "Input line too long")
	}
	for _, r := range talkers {
		for i, s := range talkers {
			if s == r {
				continue
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				got := numbersFrom(r, s.nick)
				if len(got) >= sent[i] || time.Now().After(deadline) {
					want := make([]int, sent[i])
					for n := range want {
						want[n] = n
					}
					if !slices.Equal(got, want) {
						t.Errorf("%s got %d lines from %s, want 0..%d in order", r.nick, len(got), s.nick, sent[i]-1)
					}
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	rss.end()
	for _, r := range []string{"a", "b"} {
		grew := rss.peak[r] - rss.base[r]
		t.Logf("server %s: RSS %d MB at the start, peak %d MB", r, rss.base[r]>>20, rss.peak[r]>>20)
		if grew > floodRSSBound {
			t.Errorf("server %s grew %d MB with a 100 MB open line, want under %d MB", r, grew>>20, floodRSSBound>>20)
		}
	}
}

// floodRSSBound is what a server may grow while it holds and hands off
// a flooding client: its own buffers are a few KiB (the flood waits in
// the kernels, read at the line rate), and a hand-off dumps, sends and
// restores that connection's kernel queues, some hundreds of KiB here.
const floodRSSBound = 16 << 20

// Channel state set on one server is found on the other after each of
// two hand-offs: operators, +t, +k with its key, +l, +i with an invite,
// an away message, an invisible user; and it is enforced there.
func TestModesThroughHandOffs(t *testing.T) {
	env := startLab(t)
	a := labUser(t, env, "alice", "#ops")
	b := labUser(t, env, "bob", "#ops")
	c := labUser(t, env, "carol")
	a.send("MODE #ops +tkl s3cret 5")
	b.expect("MODE", "#ops +tkl s3cret 5")
	a.send("MODE #ops +o bob")
	b.expect("MODE", "#ops +o bob")
	b.send("AWAY :back soon")
	b.expect("306")
	c.send("MODE carol +i")
	c.expect("MODE", "carol +i")
	a.send("MODE #ops")
	created := a.expect("329", "alice #ops").Params[2]

	from, to := "a", "b"
	for i := range 2 {
		res := env.HandOff(from, to)
		if !res.OK || res.Connections != 3 {
			t.Fatalf("hand-off %d %s->%s: ok %v, %d connections (want 3): %s", i, from, to, res.OK, res.Connections, res.Error)
		}
		// A newcomer is served by the server that now holds chat.
		d := labUser(t, env, fmt.Sprintf("dave%d", i))
		d.send("JOIN #ops")
		d.expect("475", d.nick+" #ops")
		d.send("MODE #ops")
		d.expect("324", d.nick+" #ops +ntkl * 5")
		d.expect("329", d.nick+" #ops "+created)
		d.send("NAMES #ops")
		d.expect("353", d.nick+" = #ops @alice @bob")
		d.send("WHOIS bob")
		d.expect("301", d.nick+" bob back soon")
		d.send("WHO *")
		for _, m := range d.sync() {
			if m.Command == "352" && m.Params[5] == "carol" {
				t.Errorf("after hand-off %d, invisible carol shows in WHO *", i)
			}
		}
		d.send("QUIT")
		d.expect("ERROR")
		from, to = to, from
	}
	// Enforced on the server they came back to, by the operators they had.
	a.send("MODE #ops +i")
	b.expect("MODE", "#ops +i")
	c.send("JOIN #ops s3cret")
	c.expect("473", "carol #ops")
	b.send("INVITE carol #ops")
	c.expect("INVITE", "carol #ops")
	c.send("JOIN #ops s3cret")
	c.expect("366", "carol #ops")
	c.send("TOPIC #ops :no")
	c.expect("482", "carol #ops")
	b.send("KICK #ops carol :out")
	a.expect("KICK", "#ops carol out")
	if res := env.HandOff("a", "b"); !res.OK {
		t.Fatalf("third hand-off: %s", res.Error)
	}
	a.send("MODE #ops")
	a.expect("324", "alice #ops +intkl s3cret 5")
}
