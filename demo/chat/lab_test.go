package chat_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/chat"
	"github.com/sockshift/sockshift/demo/internal/labtest"
)

const chatPort = 6667

// startLab starts the lab with servers that PING a client silent for a
// second, so a test sees PINGs on both sides of a hand-off.
func startLab(t *testing.T) *labtest.Env {
	args := []string{"--chat-ping=1s"}
	return labtest.Start(t, map[string][]string{"a": args, "b": args})
}

func labUser(t *testing.T, env *labtest.Env, nick string, chans ...string) *ircClient {
	t.Helper()
	ic := newClient(t, env.DialChat(), nick)
	ic.register()
	for _, ch := range chans {
		ic.join(ch)
	}
	return ic
}

// chatState lists a server's chat connections, from its GET /state.
func chatState(t *testing.T, env *labtest.Env, role string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := env.Control(role).State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range st.Connections {
		if c.Service == chat.Name {
			n++
			if c.BytesIn == 0 || c.BytesOut == 0 {
				t.Errorf("server %s: chat connection %s: %d bytes in, %d out", role, c.Client, c.BytesIn, c.BytesOut)
			}
		}
	}
	return n
}

// Several clients chat in #lab through hand-offs A->B->A->B->A: every line
// arrives once, in order; nobody is disconnected; a half line written
// across a freeze arrives once; an idle client keeps being PINGed by
// whichever server holds it; a late joiner sees the members and the topic.
func TestChatAcrossHandOffs(t *testing.T) {
	env := startLab(t)
	talkers := []*ircClient{}
	for i := range 4 {
		talkers = append(talkers, labUser(t, env, fmt.Sprintf("talk%d", i), "#lab"))
	}
	idle := labUser(t, env, "idle", "#lab")
	half := labUser(t, env, "half", "#lab")
	everyone := append(slices.Clone(talkers), idle, half)
	talkers[0].send("TOPIC #lab :lines cross the switch")
	for _, c := range everyone {
		c.expect("TOPIC", "#lab lines cross the switch")
	}
	if n := chatState(t, env, "a"); n != len(everyone) {
		t.Fatalf("server a lists %d chat connections, want %d", n, len(everyone))
	}

	stop := make(chan struct{})
	sent := make([]int, len(talkers))
	var wg sync.WaitGroup
	for i, c := range talkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					sent[i] = n
					return
				case <-time.After(120 * time.Millisecond):
				}
				c.send("PRIVMSG #lab :%s %d", c.nick, n)
			}
		}()
	}

	time.Sleep(500 * time.Millisecond)
	half.write("PRIVMSG #lab :half-")
	time.Sleep(100 * time.Millisecond)
	var handedAt []time.Time
	from, to := "a", "b"
	for i := range 4 {
		res := env.HandOff(from, to)
		if !res.OK || res.Connections != len(everyone) {
			t.Fatalf("hand-off %d %s->%s: ok %v, %d connections (want %d): %s", i, from, to, res.OK, res.Connections, len(everyone), res.Error)
		}
		handedAt = append(handedAt, time.Now())
		if i == 0 {
			half.write("way\r\n")
		}
		if n := chatState(t, env, to); n != len(everyone) {
			t.Errorf("after hand-off %d, %s lists %d chat connections, want %d", i, to, n, len(everyone))
		}
		from, to = to, from
		time.Sleep(2 * time.Second)
	}
	close(stop)
	wg.Wait()

	// Every talker's lines reach every other client once, in order.
	deadline := time.Now().Add(15 * time.Second)
	for _, r := range everyone {
		for i, s := range talkers {
			if s == r {
				continue
			}
			for {
				got := numbersFrom(r, s.nick)
				if len(got) >= sent[i] || time.Now().After(deadline) {
					want := make([]int, sent[i])
					for n := range want {
						want[n] = n
					}
					if !slices.Equal(got, want) {
						t.Errorf("%s got %d lines from %s, want 0..%d in order: %v", r.nick, len(got), s.nick, sent[i]-1, got)
					}
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	for _, r := range everyone {
		if r == half {
			continue
		}
		n := 0
		for _, m := range r.messages("PRIVMSG") {
			if strings.HasPrefix(m.Prefix, "half!") {
				n++
				if m.Params[1] != "half-way" {
					t.Errorf("%s got %q from half, want \"half-way\"", r.nick, m.Params[1])
				}
			}
		}
		if n != 1 {
			t.Errorf("%s got %d lines from half, want 1", r.nick, n)
		}
	}

	// The idle client was PINGed after each hand-off, by each server.
	idle.mu.Lock()
	pings := slices.Clone(idle.pings)
	idle.mu.Unlock()
	for i, at := range handedAt {
		end := time.Now()
		if i+1 < len(handedAt) {
			end = handedAt[i+1]
		}
		if !slices.ContainsFunc(pings, func(p time.Time) bool { return p.After(at) && p.Before(end) }) {
			t.Errorf("no server PING between hand-off %d and the next (%d pings in all)", i, len(pings))
		}
	}

	// A late joiner sees everyone and the topic.
	late := labUser(t, env, "late")
	late.send("JOIN #lab")
	late.expect("332", "late #lab lines cross the switch")
	names := late.expect("353", "late = #lab").Params[3]
	// talk0 came first: it is the operator, through four hand-offs.
	if want := "half idle late @talk0 talk1 talk2 talk3"; names != want {
		t.Errorf("NAMES %q, want %q", names, want)
	}
	late.expect("366")
	late.send("TOPIC #lab")
	late.expect("332", "late #lab lines cross the switch")

	// Nobody was disconnected, nobody quit.
	for _, c := range everyone {
		c.roundTrip("still-" + c.nick)
		if err := c.readErr(); err != nil {
			t.Errorf("%s: %v", c.nick, err)
		}
		if q := c.messages("QUIT"); len(q) > 0 {
			t.Errorf("%s saw a QUIT: %v", c.nick, q[0])
		}
		if e := c.messages("ERROR"); len(e) > 0 {
			t.Errorf("%s got an ERROR: %v", c.nick, e[0])
		}
	}
	t.Logf("talkers sent %v lines; idle got %d PINGs", sent, len(pings))
}

// numbersFrom lists the numbers of nick's "nick N" lines in #lab that r
// received.
func numbersFrom(r *ircClient, nick string) []int {
	var out []int
	for _, m := range r.messages("PRIVMSG") {
		if !strings.HasPrefix(m.Prefix, nick+"!") || len(m.Params) < 2 {
			continue
		}
		num, ok := strings.CutPrefix(m.Params[1], nick+" ")
		if n, err := strconv.Atoi(num); ok && err == nil {
			out = append(out, n)
		}
	}
	return out
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitFor(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), text) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed %q; it has:\n%s", path, text, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// toFIFO writes one line into one of ii's in FIFOs.
func toFIFO(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}
