package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestEventsStream(t *testing.T) {
	baseline := runtime.NumGoroutine()
	lab := &fakeLab{state: sampleState(), handOff: func(context.Context, string) (Report, error) { return okReport("b"), nil }}
	// A long period: the state events seen come from connecting and from
	// the hand-off, not from the clock.
	s, ts := newTestServer(t, Config{Lab: lab, StatePeriod: time.Hour})

	st := openEvents(t, ts.URL)
	ev := st.next(t, "state")
	if got := decode[State](t, []byte(ev.data)); !reflect.DeepEqual(got, sampleState()) {
		t.Fatalf("initial state %+v", got)
	}
	if n := s.events.count(); n != 1 {
		t.Fatalf("subscribers %d, want 1", n)
	}

	stats := ClientStats{Mode: "chat", Bytes: 4242, Errors: 1, LastRTTus: 321, WorstGapUS: 7000}
	s.Publish(Event{Type: "client", Data: stats})
	if got := decode[ClientStats](t, []byte(st.next(t, "client").data)); got != stats {
		t.Fatalf("client event %+v, want %+v", got, stats)
	}

	if r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"to":"b"}`, nil); r.code != http.StatusOK {
		t.Fatalf("hand-off: %d %s", r.code, r.body)
	}
	if got := decode[Report](t, []byte(st.next(t, "handoff").data)); !reflect.DeepEqual(got, okReport("b")) {
		t.Fatalf("handoff event %+v", got)
	}
	// A hand-off also pushes the new state at once.
	st.next(t, "state")

	// More streams, then everybody leaves: no subscriber, no poller, no
	// goroutine left behind.
	more := []*sseStream{openEvents(t, ts.URL), openEvents(t, ts.URL), openEvents(t, ts.URL)}
	for _, m := range more {
		m.next(t, "state")
	}
	s.events.mu.Lock()
	poll := s.events.poll
	s.events.mu.Unlock()
	if poll == nil {
		t.Fatal("no state poller while streams are open")
	}
	st.close()
	for _, m := range more {
		m.close()
	}
	eventually(t, "subscriber count drops to zero", func() bool { return s.events.count() == 0 })
	select {
	case <-poll.done:
	case <-time.After(waitLimit):
		t.Fatal("state poller still running with no subscriber")
	}
	ts.Close()
	http.DefaultClient.CloseIdleConnections()
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= baseline })
	// Publishing with nobody listening is fine.
	s.Publish(Event{Type: "client", Data: stats})
}

func TestEventsPeriodicStateAndLabError(t *testing.T) {
	lab := &fakeLab{state: sampleState()}
	_, ts := newTestServer(t, Config{Lab: lab, StatePeriod: 10 * time.Millisecond})
	st := openEvents(t, ts.URL)
	st.next(t, "state") // initial
	st.next(t, "state") // polled
	lab.mu.Lock()
	lab.stateErr = errors.New("node a: no such namespace")
	lab.mu.Unlock()
	ev := st.next(t, "error")
	var body map[string]string
	if err := json.Unmarshal([]byte(ev.data), &body); err != nil || !strings.Contains(body["error"], "no such namespace") {
		t.Fatalf("error event %q (%v)", ev.data, err)
	}
}

func TestPublishNeverBlocks(t *testing.T) {
	s, err := New(Config{Lab: &fakeLab{}, StatePeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	slow, err := s.events.subscribe() // never reads
	if err != nil {
		t.Fatal(err)
	}
	defer s.events.unsubscribe(slow)
	fast, err := s.events.subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer s.events.unsubscribe(fast)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 * subscriberBuffer {
			s.Publish(Event{Type: "client", Data: ClientStats{Bytes: uint64(i)}})
		}
	}()
	for i := 0; i < subscriberBuffer; i++ { // the reader is not starved by the slow one
		select {
		case <-fast.frames:
		case <-time.After(waitLimit):
			t.Fatal("fast subscriber got nothing")
		}
	}
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Publish blocked on a subscriber that does not read")
	}
	if n := len(slow.frames); n != subscriberBuffer {
		t.Errorf("slow subscriber holds %d events, want its buffer full (%d)", n, subscriberBuffer)
	}
}

func TestEncodeEvent(t *testing.T) {
	frame, err := encodeEvent(Event{Type: "client", Data: map[string]string{"note": "two\nlines"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(frame), "event: client\ndata: {\"note\":\"two\\nlines\"}\n\n"; got != want {
		t.Errorf("frame %q, want %q", got, want)
	}
	for _, typ := range []string{"", "a\nb", "a\rb", "x: y", "a b"} {
		if _, err := encodeEvent(Event{Type: typ, Data: 1}); err == nil {
			t.Errorf("type %q accepted", typ)
		}
	}
	if _, err := encodeEvent(Event{Type: "x", Data: make(chan int)}); err == nil {
		t.Error("unencodable data accepted")
	}
}
