package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

var testPhases = []string{"quiesce", "freeze", "release", "dump"}

// fakeClassroom is a lab with step mode: a step-mode hand-off waits for
// Step before each phase, as the demo's servers do.
type fakeClassroom struct {
	*fakeLab
	mu      sync.Mutex
	reqs    []HandOffRequest
	step    *StepState
	next    chan bool
	stopped error // the error the last step-mode hand-off ended with
}

func (l *fakeClassroom) State(ctx context.Context) (State, error) {
	st, err := l.fakeLab.State(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.step != nil {
		cp := *l.step
		cp.Done = slices.Clone(cp.Done)
		st.Step = &cp
	}
	return st, err
}

func (l *fakeClassroom) HandOffWith(ctx context.Context, req HandOffRequest) (Report, error) {
	l.mu.Lock()
	l.reqs = append(l.reqs, req)
	l.mu.Unlock()
	if !req.Step {
		rep := okReport(req.To)
		rep.Break = req.Break
		return rep, nil
	}
	defer func() {
		l.mu.Lock()
		l.step, l.next = nil, nil
		l.mu.Unlock()
	}()
	for _, p := range testPhases {
		ch := make(chan bool, 1)
		l.mu.Lock()
		if l.step == nil {
			l.step = &StepState{From: "a", To: req.To, Phases: testPhases, Break: req.Break}
		}
		l.step.Waiting, l.next = p, ch
		l.mu.Unlock()
		select {
		case abort := <-ch:
			if abort {
				err := fmt.Errorf("stopped by the operator at %s", p)
				l.setStopped(err)
				return Report{From: "a", To: req.To, RolledBack: true}, err
			}
		case <-ctx.Done():
			l.setStopped(ctx.Err())
			return Report{From: "a", To: req.To, RolledBack: true}, ctx.Err()
		}
		l.mu.Lock()
		l.step.Done = append(l.step.Done, p)
		l.mu.Unlock()
	}
	return okReport(req.To), nil
}

func (l *fakeClassroom) setStopped(err error) {
	l.mu.Lock()
	l.stopped = err
	l.mu.Unlock()
}

func (l *fakeClassroom) Step(ctx context.Context, abort bool) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next == nil {
		return "", errors.New("no hand-off is waiting for a step")
	}
	l.next <- abort
	l.next = nil
	phase := l.step.Waiting
	l.step.Waiting = ""
	return phase, nil
}

func newClassroom() *fakeClassroom { return &fakeClassroom{fakeLab: &fakeLab{state: sampleState()}} }

func TestStepModeWalksThroughEveryPhase(t *testing.T) {
	lab := newClassroom()
	_, ts := newTestServer(t, Config{Lab: lab})
	events := openEvents(t, ts.URL)
	if st := decode[State](t, []byte(events.next(t, "state").data)); !st.Features.Step || st.Features.Capture {
		t.Fatalf("features %+v, want step only", st.Features)
	}

	r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"to":"b","step":true,"break":{"skip_announce":true}}`, nil)
	if r.code != http.StatusAccepted {
		t.Fatalf("step-mode hand-off: %d %s", r.code, r.body)
	}
	acc := decode[acceptedBody](t, r.body)
	if !acc.Accepted || acc.Step == nil || acc.Step.Waiting != "quiesce" || acc.Step.To != "b" {
		t.Fatalf("accepted: %s", r.body)
	}
	// One hand-off at a time, step mode or not.
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", `{}`, nil), http.StatusConflict)
	if st := decode[State](t, do(t, http.MethodGet, ts.URL+"/api/state", "", nil).body); st.Step == nil || st.Step.Waiting != "quiesce" {
		t.Fatalf("state during step mode: %+v", st.Step)
	}

	for i, phase := range testPhases {
		r := do(t, http.MethodPost, ts.URL+"/api/step", `{"abort":false}`, nil)
		if r.code != http.StatusOK {
			t.Fatalf("step %d: %d %s", i, r.code, r.body)
		}
		b := decode[stepBody](t, r.body)
		if b.Phase != phase {
			t.Fatalf("step %d released %q, want %q", i, b.Phase, phase)
		}
		if i+1 < len(testPhases) && (b.Step == nil || b.Step.Waiting != testPhases[i+1] || !slices.Equal(b.Step.Done, testPhases[:i+1])) {
			t.Fatalf("after step %d: %+v", i, b.Step)
		}
	}
	var rep Report
	for rep.From == "" {
		ev := events.next(t, "handoff")
		rep = decode[Report](t, []byte(ev.data))
	}
	if !rep.OK || !rep.Step || rep.To != "b" {
		t.Fatalf("the step-mode hand-off's report: %+v", rep)
	}
	lab.mu.Lock()
	reqs := lab.reqs
	lab.mu.Unlock()
	if len(reqs) != 1 || !reqs[0].Step || reqs[0].Break == nil || !reqs[0].Break.SkipAnnounce || reqs[0].Break.KeepVIP {
		t.Fatalf("the lab was asked %+v", reqs)
	}
	// Nothing waits any more; the next hand-off may start.
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/step", `{}`, nil), http.StatusConflict)
	if r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"break":{"keep_vip":true,"skip_announce":true}}`, nil); r.code != http.StatusOK {
		t.Fatalf("break-it hand-off: %d %s", r.code, r.body)
	} else if rep := decode[Report](t, r.body); rep.Break == nil || !rep.Break.KeepVIP || rep.Step {
		t.Fatalf("break-it report: %s", r.body)
	}
}

func TestStepModeAbortRollsBack(t *testing.T) {
	lab := newClassroom()
	_, ts := newTestServer(t, Config{Lab: lab})
	events := openEvents(t, ts.URL)
	if r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"step":true}`, nil); r.code != http.StatusAccepted {
		t.Fatalf("%d %s", r.code, r.body)
	}
	do(t, http.MethodPost, ts.URL+"/api/step", ``, nil)
	r := do(t, http.MethodPost, ts.URL+"/api/step", `{"abort":true}`, nil)
	if b := decode[stepBody](t, r.body); r.code != http.StatusOK || b.Phase != "freeze" || !b.Abort || b.Step != nil {
		t.Fatalf("abort: %d %s", r.code, r.body)
	}
	rep := decode[Report](t, []byte(events.next(t, "handoff").data))
	if rep.OK || !rep.RolledBack || !strings.Contains(rep.Error, "stopped by the operator") {
		t.Fatalf("aborted report: %+v", rep)
	}
}

func TestStepModeNeedsAClassroom(t *testing.T) {
	_, ts := newTestServer(t, Config{Lab: &fakeLab{state: sampleState()}})
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", `{"step":true}`, nil), http.StatusBadRequest)
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", `{"break":{"keep_vip":true}}`, nil), http.StatusBadRequest)
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/step", `{}`, nil), http.StatusNotFound)
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/step", `{"abort":1}`, nil), http.StatusNotFound)
	st := decode[State](t, do(t, http.MethodGet, ts.URL+"/api/state", "", nil).body)
	if st.Features.Step || st.Features.Capture {
		t.Fatalf("features %+v, want none", st.Features)
	}
	// An empty break is no break: a plain hand-off.
	lab := &fakeLab{state: sampleState(), handOff: func(ctx context.Context, to string) (Report, error) { return okReport("b"), nil }}
	_, ts2 := newTestServer(t, Config{Lab: lab})
	if r := do(t, http.MethodPost, ts2.URL+"/api/handoff", `{"break":{}}`, nil); r.code != http.StatusOK {
		t.Fatalf("empty break: %d %s", r.code, r.body)
	}
}

func TestStepAndBadBodies(t *testing.T) {
	_, ts := newTestServer(t, Config{Lab: newClassroom()})
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/step", `{"abort":false,"x":1}`, nil), http.StatusBadRequest)
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/step", strings.Repeat(" ", maxHandOffBody+1), nil), http.StatusRequestEntityTooLarge)
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", `{"step":"yes"}`, nil), http.StatusBadRequest)
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", `{"break":{"loud":true}}`, nil), http.StatusBadRequest)
}

func TestStepNeedsTheToken(t *testing.T) {
	lab := newClassroom()
	_, ts := newTestServer(t, Config{Lab: lab, Listen: "0.0.0.0:8080", Token: "s3cret"})
	r := do(t, http.MethodPost, ts.URL+"/api/step", `{}`, nil)
	wantJSONError(t, r, http.StatusUnauthorized)
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", `{"step":true}`, nil), http.StatusUnauthorized)
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	if r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"step":true}`, auth); r.code != http.StatusAccepted {
		t.Fatalf("with the token: %d %s", r.code, r.body)
	}
	if r := do(t, http.MethodPost, ts.URL+"/api/step", `{"abort":true}`, auth); r.code != http.StatusOK {
		t.Fatalf("step with the token: %d %s", r.code, r.body)
	}
	// Without a token, a loopback console refuses steps from other sites.
	_, ts2 := newTestServer(t, Config{Lab: newClassroom()})
	wantJSONError(t, do(t, http.MethodPost, ts2.URL+"/api/step", `{}`, map[string]string{"Origin": "http://evil.example"}), http.StatusForbidden)
}

// Stopping the console ends a step-mode hand-off that waits for a person:
// it rolls back instead of holding connections frozen.
func TestServeEndsWaitingStepHandOff(t *testing.T) {
	lab := newClassroom()
	s, err := New(Config{Lab: lab})
	if err != nil {
		t.Fatal(err)
	}
	url, cancel, served := serve(t, s)
	if r := do(t, http.MethodPost, url+"/api/handoff", `{"step":true}`, nil); r.code != http.StatusAccepted {
		t.Fatalf("%d %s", r.code, r.body)
	}
	cancel()
	if err := waitServed(t, served); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	lab.mu.Lock()
	defer lab.mu.Unlock()
	if !errors.Is(lab.stopped, context.Canceled) || lab.step != nil {
		t.Fatalf("the waiting hand-off: stopped %v, step %+v", lab.stopped, lab.step)
	}
}

// fakeRecorder keeps files about the latest hand-off.
type fakeRecorder struct {
	*fakeLab
	mu    sync.Mutex
	files map[string][]byte
}

func (l *fakeRecorder) HandOffFile(ctx context.Context, name string) ([]byte, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.files[name]
	if !ok {
		return nil, "", fmt.Errorf("%s: %w", name, ErrNoFile)
	}
	ct := "application/vnd.tcpdump.pcap"
	if strings.HasSuffix(name, ".svg") {
		ct = "image/svg+xml"
	}
	return b, ct, nil
}

func TestHandOffFiles(t *testing.T) {
	lab := &fakeRecorder{fakeLab: &fakeLab{state: sampleState()}}
	_, ts := newTestServer(t, Config{Lab: lab})
	wantJSONError(t, do(t, http.MethodGet, ts.URL+"/api/handoffs/latest.pcap", "", nil), http.StatusNotFound)
	lab.mu.Lock()
	lab.files = map[string][]byte{"latest.pcap": {0xd4, 0xc3, 0xb2, 0xa1}, "latest.svg": []byte("<svg/>")}
	lab.mu.Unlock()
	r := do(t, http.MethodGet, ts.URL+"/api/handoffs/latest.pcap", "", nil)
	if r.code != http.StatusOK || string(r.body) != "\xd4\xc3\xb2\xa1" || r.header.Get("Content-Type") != "application/vnd.tcpdump.pcap" ||
		!strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("latest.pcap: %d %q %v", r.code, r.body, r.header)
	}
	r = do(t, http.MethodGet, ts.URL+"/api/handoffs/latest.svg", "", nil)
	if r.code != http.StatusOK || string(r.body) != "<svg/>" || r.header.Get("Content-Type") != "image/svg+xml" ||
		!strings.Contains(r.header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("latest.svg: %d %q %v", r.code, r.body, r.header)
	}
	for _, bad := range []string{"latest.txt", "..%2fweb.go", "key"} {
		wantJSONError(t, do(t, http.MethodGet, ts.URL+"/api/handoffs/"+bad, "", nil), http.StatusNotFound)
	}
	st := decode[State](t, do(t, http.MethodGet, ts.URL+"/api/state", "", nil).body)
	if !st.Features.Capture || st.Features.Step {
		t.Fatalf("features %+v, want capture only", st.Features)
	}
	// A lab that records nothing has no files.
	_, ts2 := newTestServer(t, Config{Lab: &fakeLab{state: sampleState()}})
	wantJSONError(t, do(t, http.MethodGet, ts2.URL+"/api/handoffs/latest.pcap", "", nil), http.StatusNotFound)
}

// The JSON a hand-off report carries for the page.
func TestReportJSONShape(t *testing.T) {
	rep := Report{OK: true, From: "a", To: "b", Phases: []Phase{}, GapUS: 812, Caught: 2,
		Moved:     []Moved{{Client: "192.0.2.10:40000", Before: map[string]int{"send_seq": 7}, After: map[string]int{"send_seq": 7}}},
		ARPBefore: "192.0.2.100 dev eth0 lladdr 02:00:00:00:00:01 REACHABLE", Capture: &Capture{Frames: 40, ARP: 1, Announced: true}}
	b, _ := json.Marshal(rep)
	var raw map[string]any
	json.Unmarshal(b, &raw)
	for _, k := range []string{"gap_us", "caught", "moved", "arp_before", "capture"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report lacks %q: %s", k, b)
		}
	}
	if mv := raw["moved"].([]any)[0].(map[string]any)["before"].(map[string]any); mv["send_seq"] != 7.0 {
		t.Errorf("moved before: %v", mv)
	}
}

// TestHandOffOneService: a selection of services reaches the lab as asked;
// an unknown service or an empty selection is refused with the list of
// what exists, and nothing is handed off.
func TestHandOffOneService(t *testing.T) {
	lab := &fakeClassroom{fakeLab: &fakeLab{state: sampleState()}}
	_, ts := newTestServer(t, Config{Lab: lab})
	r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"services":["chat"]}`, nil)
	if r.code != http.StatusOK {
		t.Fatalf("chat alone: status %d: %s", r.code, r.body)
	}
	lab.mu.Lock()
	reqs := slices.Clone(lab.reqs)
	lab.mu.Unlock()
	if len(reqs) != 1 || !slices.Equal(reqs[0].Services, []string{"chat"}) {
		t.Fatalf("the lab was asked %+v, want chat alone", reqs)
	}
	for body, want := range map[string]string{
		`{"services":["nosuch"]}`:        `unknown service "nosuch" in "services": this lab has echo, chat`,
		`{"services":["chat","nosuch"]}`: `unknown service "nosuch"`,
		`{"services":[]}`:                `empty "services": name one or more of: echo, chat`,
	} {
		msg := wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", body, nil), http.StatusBadRequest)
		if !strings.Contains(msg, want) {
			t.Errorf("%s: error %q, want it to say %q", body, msg, want)
		}
	}
	lab.mu.Lock()
	defer lab.mu.Unlock()
	if len(lab.reqs) != 1 {
		t.Errorf("bad selections reached the lab: %+v", lab.reqs[1:])
	}
}

// TestServicesNeedAClassroom: a lab that only hands off everything says
// so for a selection.
func TestServicesNeedAClassroom(t *testing.T) {
	lab := &fakeLab{state: sampleState()}
	_, ts := newTestServer(t, Config{Lab: lab})
	msg := wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", `{"services":["chat"]}`, nil), http.StatusBadRequest)
	if !strings.Contains(msg, "every service at once") || len(lab.calls()) != 0 {
		t.Errorf("error %q, calls %v", msg, lab.calls())
	}
}
