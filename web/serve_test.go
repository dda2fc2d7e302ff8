package web

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

func serve(t *testing.T, s *Server) (url string, cancel context.CancelFunc, served <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- s.Serve(ctx, ln)
		close(errc) // the cleanup may wait again
	}()
	t.Cleanup(func() {
		cancel()
		<-errc
	})
	return "http://" + ln.Addr().String(), cancel, errc
}

func waitServed(t *testing.T, served <-chan error) error {
	t.Helper()
	select {
	case err := <-served:
		return err
	case <-time.After(waitLimit + shutdownGrace):
		t.Fatal("Serve did not return after its context was cancelled")
		return nil
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	s, err := New(Config{Lab: &fakeLab{state: sampleState()}})
	if err != nil {
		t.Fatal(err)
	}
	url, cancel, served := serve(t, s)
	if r := do(t, http.MethodGet, url+"/api/state", "", nil); r.code != http.StatusOK {
		t.Fatalf("GET /api/state: %d", r.code)
	}
	st := openEvents(t, url)
	st.next(t, "state")

	cancel()
	if err := waitServed(t, served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The open stream was ended by the server, not left hanging.
	for range st.events {
	}
	if s.events.count() != 0 {
		t.Errorf("%d subscribers left after Serve returned", s.events.count())
	}
	if _, err := http.Get(url + "/api/state"); err == nil {
		t.Error("server still answers after Serve returned")
	}
}

func TestServeLetsRunningHandOffFinish(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	lab := &fakeLab{handOff: func(ctx context.Context, _ string) (Report, error) {
		close(started)
		<-release
		if err := ctx.Err(); err != nil {
			return Report{}, err
		}
		return okReport("b"), nil
	}}
	s, err := New(Config{Lab: lab})
	if err != nil {
		t.Fatal(err)
	}
	url, cancel, served := serve(t, s)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	answer := make(chan response, 1)
	go func() { answer <- do(t, http.MethodPost, url+"/api/handoff", "{}", nil) }()
	<-started
	cancel()
	// Shutdown has begun; the hand-off completes within the grace period.
	free()
	if r := <-answer; r.code != http.StatusOK {
		t.Fatalf("hand-off during shutdown: %d %s", r.code, r.body)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// addrListener is a listener that only claims an address: Serve must
// refuse it before accepting anything.
type addrListener struct {
	net.Listener
	addr   net.Addr
	closed bool
}

func (l *addrListener) Addr() net.Addr { return l.addr }
func (l *addrListener) Close() error   { l.closed = true; return nil }

func TestServeRefusesNonLoopbackWithoutToken(t *testing.T) {
	s, err := New(Config{Lab: &fakeLab{}})
	if err != nil {
		t.Fatal(err)
	}
	ln := &addrListener{addr: &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 8080}}
	if err := s.Serve(context.Background(), ln); err == nil {
		t.Fatal("Serve accepted a non-loopback listener without a token")
	}
	if !ln.closed {
		t.Error("refused listener left open")
	}
}
