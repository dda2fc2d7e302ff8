package count_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/count"
	"github.com/sockshift/sockshift/demo/internal/labtest"
)

// The lab's servers run count only when asked: it is not in the default demo.
var (
	countAddr = netip.MustParseAddr("192.0.2.102")
	withCount = []string{"--services", "echo,chat,count"}
)

const countPort = 7777

// liner writes numbered lines to the count service and checks every
// answer: the count goes on across hand-offs (it is the connection's state,
// carried in its snapshot), no line is lost, repeated or changed. A line is
// sometimes written in two halves with a pause between, so that some
// hand-offs freeze with half a line read.
type liner struct {
	id   int
	mu   sync.Mutex
	sent int // lines written
	got  int // answers read and checked
	err  error
	stop chan struct{}
	done chan struct{}
}

func line(id, i int) string {
	return fmt.Sprintf("client %d line %d %s", id, i, strings.Repeat("x", i%97))
}

func startLiner(t *testing.T, env *labtest.Env, id int) *liner {
	c := env.DialAddr(countAddr, countPort)
	l := &liner{id: id, stop: make(chan struct{}), done: make(chan struct{})}
	go func() { // reader
		defer close(l.done)
		r := bufio.NewReader(c)
		for i := 1; ; i++ {
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			got, err := r.ReadString('\n')
			if err != nil {
				l.fail(fmt.Errorf("answer %d: %w", i, err))
				return
			}
			if want := fmt.Sprintf("%d %s\n", i, line(id, i)); got != want {
				l.fail(fmt.Errorf("answer %d: got %q, want %q", i, got, want))
				return
			}
			l.mu.Lock()
			l.got = i
			finished := l.got == l.sent && isClosed(l.stop)
			l.mu.Unlock()
			if finished {
				return
			}
		}
	}()
	go func() { // writer
		for i := 1; !isClosed(l.stop); i++ {
			s := line(id, i) + "\n"
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			half := len(s) / 2
			if i%5 == 0 {
				if _, err := c.Write([]byte(s[:half])); err != nil {
					l.fail(err)
					return
				}
				time.Sleep(3 * time.Millisecond)
			} else {
				half = 0
			}
			if _, err := c.Write([]byte(s[half:])); err != nil {
				l.fail(err)
				return
			}
			l.mu.Lock()
			l.sent = i
			l.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	return l
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (l *liner) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

// finish stops writing and waits for the answer to every line written.
func (l *liner) finish(t *testing.T) int {
	t.Helper()
	l.mu.Lock()
	close(l.stop)
	l.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l.mu.Lock()
		sent, got, err := l.sent, l.got, l.err
		l.mu.Unlock()
		if err != nil {
			t.Fatalf("client %d after %d of %d lines: %v", l.id, got, sent, err)
		}
		if got == sent && got > 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("client %d: %d lines written, %d answered", l.id, sent, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holders says where each service's address is.
func holders(t *testing.T, env *labtest.Env) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := env.Holders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Clients of count keep their line numbers through hand-offs between the
// lab's namespaces, of count alone and of every service: every line
// written comes back once, numbered in order, both ways.
func TestCountThroughHandOffs(t *testing.T) {
	env := labtest.Start(t, map[string][]string{"a": withCount, "b": withCount})
	var liners []*liner
	for i := range 3 {
		liners = append(liners, startLiner(t, env, i))
	}
	time.Sleep(200 * time.Millisecond)

	hops := []struct {
		from, to string
		services []string
	}{
		{"a", "b", []string{count.Name}}, // count alone: echo and chat stay on a
		{"b", "a", []string{count.Name}},
		{"a", "b", nil}, // everything
		{"b", "a", nil},
		{"a", "b", []string{count.Name}},
		{"b", "a", []string{count.Name}},
	}
	for i, h := range hops {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := env.HandOffServices(ctx, h.from, h.to, h.services...)
		cancel()
		if err != nil || !res.OK {
			t.Fatalf("hand-off %d %s->%s %v: %v %s", i, h.from, h.to, h.services, err, res.Error)
		}
		if !slices.Contains(res.Services, count.Name) || res.Connections != len(liners) {
			t.Fatalf("hand-off %d moved %v, %d connections; want count's %d", i, res.Services, res.Connections, len(liners))
		}
		want := map[string]string{"echo": h.to, "chat": h.to, count.Name: h.to}
		if h.services != nil {
			want["echo"], want["chat"] = "a", "a"
		}
		if got := holders(t, env); !maps(got, want) {
			t.Fatalf("after hand-off %d the addresses are on %v, want %v", i, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := env.Control("a").State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range st.Connections {
		if c.Service == count.Name {
			n++
		}
	}
	if n != len(liners) {
		t.Errorf("server a serves %d count connections, want %d", n, len(liners))
	}
	for _, l := range liners {
		t.Logf("client %d: %d lines, each answered with its number", l.id, l.finish(t))
	}
}

func maps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
