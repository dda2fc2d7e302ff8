package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitLimit only guards against hangs; no test asserts on speed.
const waitLimit = 10 * time.Second

// fakeLab is a Lab whose state is fixed and whose hand-off is a function
// the test chooses.
type fakeLab struct {
	mu       sync.Mutex
	state    State
	stateErr error
	handOff  func(ctx context.Context, to string) (Report, error)
	tos      []string
}

func (l *fakeLab) State(ctx context.Context) (State, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state, l.stateErr
}

func (l *fakeLab) HandOff(ctx context.Context, to string) (Report, error) {
	l.mu.Lock()
	l.tos = append(l.tos, to)
	fn := l.handOff
	l.mu.Unlock()
	if fn == nil {
		return Report{}, errors.New("fake: no hand-off configured")
	}
	return fn(ctx, to)
}

func (l *fakeLab) calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.tos...)
}

func sampleState() State {
	return State{
		Holder: "a",
		VIP:    "192.0.2.100",
		Services: []Service{
			{Name: "echo", Address: "192.0.2.100", Port: 7, Holder: "a"},
			{Name: "chat", Address: "192.0.2.101", Port: 6667, Holder: "a"},
		},
		Nodes: []Node{
			{Name: "a", Address: "192.0.2.1", MAC: "02:00:00:00:00:01", HoldsVIP: true, Connections: 2, Up: true},
			{Name: "b", Address: "192.0.2.2", MAC: "02:00:00:00:00:02", HoldsVIP: false, Connections: 0, Up: true},
		},
		Connections: []Connection{
			{Service: "echo", Client: "192.0.2.10:40001", Node: "a", BytesIn: 1234, BytesOut: 1234},
			{Service: "chat", Client: "192.0.2.10:40002", Node: "a", BytesIn: 77, BytesOut: 4096},
		},
		Client: &ClientStats{Mode: "echo", Bytes: 99, Errors: 0, LastRTTus: 150, WorstGapUS: 900},
	}
}

func okReport(to string) Report {
	return Report{
		OK: true, From: "a", To: to, Connections: 2, TotalUS: 4321,
		Phases:   []Phase{{Name: "freeze", US: 100}, {Name: "dump", US: 200}, {Name: "restore", US: 4021}},
		Services: []string{"echo", "chat"}, Addresses: []string{"192.0.2.100", "192.0.2.101"}, Stayed: []Stayed{},
	}
}

// newTestServer starts the console on an httptest server (loopback).
func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, body string, hdr map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{code: res.StatusCode, header: res.Header, body: b}
}

// wantJSONError checks an error answer: the status and a JSON body with a
// non-empty "error".
func wantJSONError(t *testing.T, r response, code int) string {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d; body %s", r.code, code, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type %q, want JSON; body %s", ct, r.body)
	}
	var e struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" {
		t.Fatalf("body %s: want {\"error\":...} (%v)", r.body, err)
	}
	return e.Error
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	typ  string
	data string
}

// sseStream reads events from an open /api/events response.
type sseStream struct {
	res    *http.Response
	cancel context.CancelFunc
	events chan sseEvent
	done   chan error // the read error that ended the stream
}

func openEvents(t *testing.T, url string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /api/events: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET /api/events: status %d", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		cancel()
		t.Fatalf("GET /api/events: Content-Type %q", ct)
	}
	s := &sseStream{res: res, cancel: cancel, events: make(chan sseEvent, 1024), done: make(chan error, 1)}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) read() {
	br := bufio.NewReader(s.res.Body)
	var ev sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			s.done <- err
			close(s.events)
			return
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if ev.typ != "" || ev.data != "" {
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
		case strings.HasPrefix(line, "event: "):
			ev.typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data += strings.TrimPrefix(line, "data: ")
		default:
			s.done <- errors.New("unexpected SSE line " + line)
			close(s.events)
			return
		}
	}
}

func (s *sseStream) close() {
	s.cancel()
	s.res.Body.Close()
}

// next returns the next event of type typ, skipping others (periodic state).
func (s *sseStream) next(t *testing.T, typ string) sseEvent {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended waiting for %q: %v", typ, <-s.done)
			}
			if ev.typ == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %q event", typ)
		}
	}
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}
