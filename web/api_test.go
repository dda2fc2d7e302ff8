package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func wantKeys(t *testing.T, what string, m map[string]any, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("%s keys %v, want %v", what, got, want)
	}
}

func TestStateJSONShape(t *testing.T) {
	lab := &fakeLab{state: sampleState()}
	_, ts := newTestServer(t, Config{Lab: lab})

	r := do(t, http.MethodGet, ts.URL+"/api/state", "", nil)
	if r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, "state", raw, "holder", "vip", "services", "nodes", "connections", "client", "features")
	svc := raw["services"].([]any)[1].(map[string]any)
	wantKeys(t, "service", svc, "name", "address", "port", "holder")
	if svc["name"] != "chat" || svc["address"] != "192.0.2.101" || svc["port"] != 6667.0 || svc["holder"] != "a" {
		t.Errorf("service = %v", svc)
	}
	if raw["holder"] != "a" || raw["vip"] != "192.0.2.100" {
		t.Errorf("holder/vip = %v/%v", raw["holder"], raw["vip"])
	}
	node := raw["nodes"].([]any)[0].(map[string]any)
	wantKeys(t, "node", node, "name", "address", "mac", "holds_vip", "connections", "up")
	if node["holds_vip"] != true || node["connections"] != 2.0 || node["mac"] != "02:00:00:00:00:01" {
		t.Errorf("node = %v", node)
	}
	conn := raw["connections"].([]any)[1].(map[string]any)
	wantKeys(t, "connection", conn, "service", "client", "node", "bytes_in", "bytes_out")
	if conn["service"] != "chat" || conn["bytes_in"] != 77.0 || conn["bytes_out"] != 4096.0 {
		t.Errorf("connection = %v", conn)
	}
	wantKeys(t, "client", raw["client"].(map[string]any), "mode", "bytes", "errors", "last_rtt_us", "worst_gap_us")

	if got := decode[State](t, r.body); !reflect.DeepEqual(got, sampleState()) {
		t.Errorf("state round trip:\n got %+v\nwant %+v", got, sampleState())
	}
}

func TestStateEmptyListsAndNoClient(t *testing.T) {
	lab := &fakeLab{state: State{VIP: "192.0.2.100"}}
	_, ts := newTestServer(t, Config{Lab: lab})
	r := do(t, http.MethodGet, ts.URL+"/api/state", "", nil)
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	// Lists are arrays, never null; no client means no "client" key.
	wantKeys(t, "state", raw, "holder", "vip", "services", "nodes", "connections", "features")
	if _, ok := raw["nodes"].([]any); !ok {
		t.Errorf("nodes = %#v, want []", raw["nodes"])
	}
	if _, ok := raw["connections"].([]any); !ok {
		t.Errorf("connections = %#v, want []", raw["connections"])
	}
}

func TestStateError(t *testing.T) {
	lab := &fakeLab{stateErr: errors.New("namespace ss-a is gone")}
	_, ts := newTestServer(t, Config{Lab: lab})
	msg := wantJSONError(t, do(t, http.MethodGet, ts.URL+"/api/state", "", nil), http.StatusInternalServerError)
	if !strings.Contains(msg, "namespace ss-a is gone") {
		t.Errorf("error %q does not carry the cause", msg)
	}
}

func TestHandOffOK(t *testing.T) {
	lab := &fakeLab{state: sampleState(), handOff: func(_ context.Context, to string) (Report, error) {
		if to == "" {
			to = "b"
		}
		return okReport(to), nil
	}}
	_, ts := newTestServer(t, Config{Lab: lab})

	for _, body := range []string{"", "{}", `{"to":"b"}`, "  \n", "null", `{"to":""}`} {
		r := do(t, http.MethodPost, ts.URL+"/api/handoff", body, nil)
		if r.code != http.StatusOK {
			t.Fatalf("body %q: status %d: %s", body, r.code, r.body)
		}
		if got := decode[Report](t, r.body); !reflect.DeepEqual(got, okReport("b")) {
			t.Errorf("body %q: report %+v", body, got)
		}
	}
	r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"to":"a"}`, map[string]string{"Content-Type": "application/json"})
	if r.code != http.StatusOK {
		t.Fatalf("to a: status %d: %s", r.code, r.body)
	}
	if want := []string{"", "", "b", "", "", "", "a"}; !slices.Equal(lab.calls(), want) {
		t.Errorf("Lab.HandOff got to=%q, want %q", lab.calls(), want)
	}
}

func TestHandOffFailure(t *testing.T) {
	t.Run("impossible request", func(t *testing.T) {
		// The lab refuses before it tries: the client's error, not a
		// server's. Nothing ran, so the latest report stays.
		refuse := false
		lab := &fakeLab{handOff: func(context.Context, string) (Report, error) {
			if refuse {
				return Report{To: "b", Error: "bad request: server b already holds echo"}, fmt.Errorf("%w: server b already holds echo", ErrBadRequest)
			}
			return okReport("b"), nil
		}}
		_, ts := newTestServer(t, Config{Lab: lab})
		first := do(t, http.MethodPost, ts.URL+"/api/handoff", "{}", nil)
		refuse = true
		r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"to":"b"}`, nil)
		var body map[string]any
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		if r.code != http.StatusBadRequest || body["ok"] != false || !strings.Contains(fmt.Sprint(body["error"]), "already holds echo") {
			t.Fatalf("status %d, want 400 with ok:false and the reason: %s", r.code, r.body)
		}
		if latest := do(t, http.MethodGet, ts.URL+"/api/handoffs/latest.json", "", nil); string(latest.body) != string(first.body) {
			t.Errorf("a refused request replaced the latest report: %s", latest.body)
		}
		refuse = false
		if r := do(t, http.MethodPost, ts.URL+"/api/handoff", "{}", nil); r.code != http.StatusOK {
			t.Errorf("the next hand-off after a refusal: %d %s", r.code, r.body)
		}
	})
	remaining := []Connection{{Service: "echo", Client: "192.0.2.10:40001", Node: "a", BytesIn: 5, BytesOut: 5}}
	t.Run("error", func(t *testing.T) {
		lab := &fakeLab{handOff: func(context.Context, string) (Report, error) {
			return Report{From: "a", To: "b", Phases: []Phase{{Name: "freeze", US: 10}}, Remaining: remaining},
				errors.New("restore on b: connection refused")
		}}
		_, ts := newTestServer(t, Config{Lab: lab})
		r := do(t, http.MethodPost, ts.URL+"/api/handoff", "{}", nil)
		if r.code != http.StatusBadGateway {
			t.Fatalf("status %d, want 502: %s", r.code, r.body)
		}
		got := decode[Report](t, r.body)
		if got.OK || got.Error != "restore on b: connection refused" || !reflect.DeepEqual(got.Remaining, remaining) {
			t.Errorf("report %+v", got)
		}
	})
	t.Run("not ok without error", func(t *testing.T) {
		lab := &fakeLab{handOff: func(context.Context, string) (Report, error) {
			return Report{OK: false, From: "a", To: "b", Remaining: remaining}, nil
		}}
		_, ts := newTestServer(t, Config{Lab: lab})
		r := do(t, http.MethodPost, ts.URL+"/api/handoff", "{}", nil)
		if r.code != http.StatusBadGateway {
			t.Fatalf("status %d, want 502: %s", r.code, r.body)
		}
		var raw map[string]any
		if err := json.Unmarshal(r.body, &raw); err != nil {
			t.Fatal(err)
		}
		if raw["ok"] != false || raw["error"] == "" || raw["error"] == nil || raw["remaining"] == nil {
			t.Errorf("failure body %s: want ok:false, an error, remaining", r.body)
		}
	})
}

func TestHandOffConcurrent(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	lab := &fakeLab{handOff: func(context.Context, string) (Report, error) {
		if calls.Add(1) == 1 { // only the first one blocks
			close(started)
			<-release
		}
		return okReport("b"), nil
	}}
	_, ts := newTestServer(t, Config{Lab: lab})
	// On failure too, free the blocked hand-off before the server closes.
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)

	first := make(chan response, 1)
	go func() { first <- do(t, http.MethodPost, ts.URL+"/api/handoff", "{}", nil) }()
	<-started

	r := do(t, http.MethodPost, ts.URL+"/api/handoff", `{"to":"a"}`, nil)
	if r.code != http.StatusConflict {
		t.Fatalf("second hand-off: status %d, want 409: %s", r.code, r.body)
	}
	if got, want := strings.TrimSpace(string(r.body)), `{"ok":false,"error":"a hand-off is already running"}`; got != want {
		t.Errorf("409 body %s, want %s", got, want)
	}
	free()
	if r := <-first; r.code != http.StatusOK {
		t.Fatalf("first hand-off: status %d: %s", r.code, r.body)
	}
	// Done: the next one runs.
	if r := do(t, http.MethodPost, ts.URL+"/api/handoff", "{}", nil); r.code != http.StatusOK {
		t.Fatalf("hand-off after the first: status %d: %s", r.code, r.body)
	}
	if n := len(lab.calls()); n != 2 {
		t.Errorf("Lab.HandOff called %d times, want 2 (the 409 must not reach the lab)", n)
	}
}

func TestHandOffOutlivesClient(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	ctxErr := make(chan error, 1)
	lab := &fakeLab{handOff: func(ctx context.Context, _ string) (Report, error) {
		close(started)
		<-release
		ctxErr <- ctx.Err()
		return okReport("b"), nil
	}}
	s, ts := newTestServer(t, Config{Lab: lab})

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/api/handoff", strings.NewReader("{}"))
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	<-started
	cancel() // the browser goes away mid hand-off
	<-gone
	close(release)
	if err := <-ctxErr; err != nil {
		t.Errorf("hand-off context ended with its client: %v", err)
	}
	eventually(t, "hand-off slot freed", func() bool { return !s.handingOff.Load() })
}

func TestHandOffBadRequest(t *testing.T) {
	lab := &fakeLab{handOff: func(context.Context, string) (Report, error) { return okReport("b"), nil }}
	_, ts := newTestServer(t, Config{Lab: lab})
	for _, body := range []string{
		"{", `{"to":`, "[]", `"b"`, `{"to":1}`, `{"target":"b"}`, `{} {}`, "not json",
	} {
		wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", body, nil), http.StatusBadRequest)
	}
	for _, body := range []string{`{"to":"A"}`, `{"to":" b"}`, `{"to":"a\nb"}`, `{"to":"` + strings.Repeat("a", 17) + `"}`} {
		msg := wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", body, nil), http.StatusBadRequest)
		if !strings.Contains(msg, "to") {
			t.Errorf("body %s: error %q does not name the field", body, msg)
		}
	}
	big := `{"to":"b","pad":"` + strings.Repeat("x", 2*maxHandOffBody) + `"}`
	wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", big, nil), http.StatusRequestEntityTooLarge)
	if n := len(lab.calls()); n != 0 {
		t.Errorf("bad requests reached the lab %d times", n)
	}
	// A name that may be a server's goes to the lab, which knows its
	// servers; one it lacks is still the client's error.
	lab.handOff = func(_ context.Context, to string) (Report, error) {
		return Report{}, fmt.Errorf("%w: no server %q", ErrBadRequest, to)
	}
	if msg := wantJSONError(t, do(t, http.MethodPost, ts.URL+"/api/handoff", `{"to":"c"}`, nil), http.StatusBadRequest); !strings.Contains(msg, `no server "c"`) {
		t.Errorf("an unknown server: %q", msg)
	}
}

func TestToken(t *testing.T) {
	lab := &fakeLab{state: sampleState(), handOff: func(context.Context, string) (Report, error) { return okReport("b"), nil }}
	_, ts := newTestServer(t, Config{Lab: lab, Token: "s3cret", Listen: "0.0.0.0:8080"})
	url := ts.URL + "/api/handoff"

	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic s3cret", "s3cret", "Bearer s3cret2"} {
		r := do(t, http.MethodPost, url, "{}", map[string]string{"Authorization": auth})
		wantJSONError(t, r, http.StatusUnauthorized)
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("401 without WWW-Authenticate")
		}
	}
	if n := len(lab.calls()); n != 0 {
		t.Fatalf("unauthorized requests reached the lab %d times", n)
	}
	r := do(t, http.MethodPost, url, "{}", map[string]string{"Authorization": "Bearer s3cret"})
	if r.code != http.StatusOK {
		t.Fatalf("with token: status %d: %s", r.code, r.body)
	}
	// With a token the Host is not checked: the console may be reached by
	// any name.
	r = do(t, http.MethodPost, url, "{}", map[string]string{"Authorization": "bearer s3cret", "Host": "lab.example:8080"})
	if r.code != http.StatusOK {
		t.Fatalf("with token, other Host: status %d: %s", r.code, r.body)
	}
	// GETs stay open.
	if r := do(t, http.MethodGet, ts.URL+"/api/state", "", nil); r.code != http.StatusOK {
		t.Errorf("GET /api/state without token: %d", r.code)
	}
	if r := do(t, http.MethodGet, ts.URL+"/", "", nil); r.code != http.StatusOK {
		t.Errorf("GET / without token: %d", r.code)
	}
}

func TestLoopbackRefusesOtherSites(t *testing.T) {
	lab := &fakeLab{handOff: func(context.Context, string) (Report, error) { return okReport("b"), nil }}
	_, ts := newTestServer(t, Config{Lab: lab})
	url := ts.URL + "/api/handoff"
	host := strings.TrimPrefix(ts.URL, "http://")

	// DNS rebinding: a foreign name that resolves to loopback.
	wantJSONError(t, do(t, http.MethodPost, url, "{}", map[string]string{"Host": "attacker.example:" + strings.Split(host, ":")[1]}), http.StatusForbidden)
	// CSRF: another site's page posting through the browser.
	wantJSONError(t, do(t, http.MethodPost, url, "{}", map[string]string{"Origin": "http://attacker.example"}), http.StatusForbidden)
	wantJSONError(t, do(t, http.MethodPost, url, "{}", map[string]string{"Origin": "null"}), http.StatusForbidden)
	if n := len(lab.calls()); n != 0 {
		t.Fatalf("refused requests reached the lab %d times", n)
	}
	// The console's own page, and tools that send no Origin, are fine.
	for _, hdr := range []map[string]string{{"Origin": ts.URL}, nil, {"Host": "localhost:1"}} {
		if r := do(t, http.MethodPost, url, "{}", hdr); r.code != http.StatusOK {
			t.Errorf("headers %v: status %d: %s", hdr, r.code, r.body)
		}
	}
}

func TestUnknownRouteAndMethod(t *testing.T) {
	_, ts := newTestServer(t, Config{Lab: &fakeLab{}})
	for _, path := range []string{"/nope", "/api", "/api/", "/api/state/", "/api/handoffs", "/assets/other.js"} {
		if msg := wantJSONError(t, do(t, http.MethodGet, ts.URL+path, "", nil), http.StatusNotFound); msg != "no such route" {
			t.Errorf("GET %s: error %q", path, msg)
		}
	}
	r := do(t, http.MethodGet, ts.URL+"/api/handoff", "", nil)
	wantJSONError(t, r, http.StatusMethodNotAllowed)
	if allow := r.header.Get("Allow"); allow != "POST" {
		t.Errorf("Allow %q, want POST", allow)
	}
	wantJSONError(t, do(t, http.MethodDelete, ts.URL+"/api/state", "", nil), http.StatusMethodNotAllowed)
}

func TestNewConfig(t *testing.T) {
	lab := &fakeLab{}
	for _, listen := range []string{"0.0.0.0:8080", ":8080", "192.0.2.1:80", "[::]:8080", "console.example:80"} {
		if _, err := New(Config{Lab: lab, Listen: listen}); err == nil {
			t.Errorf("New accepted non-loopback %q without a token", listen)
		}
		if _, err := New(Config{Lab: lab, Listen: listen, Token: "t"}); err != nil {
			t.Errorf("New refused %q with a token: %v", listen, err)
		}
	}
	for _, listen := range []string{"", "127.0.0.1:0", "127.0.0.2:8080", "localhost:8080", "[::1]:8080"} {
		if _, err := New(Config{Lab: lab, Listen: listen}); err != nil {
			t.Errorf("New refused loopback %q: %v", listen, err)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepted a nil Lab")
	}
	if _, err := New(Config{Lab: lab, Listen: "127.0.0.1"}); err == nil {
		t.Error("New accepted a listen address without a port")
	}
	if _, err := New(Config{Lab: lab, StatePeriod: -1}); err == nil {
		t.Error("New accepted a negative StatePeriod")
	}
}

// A page loaded after a hand-off shows it: the console keeps the last
// report (a failed one too) and serves it as the page fetches it on load.
func TestLatestReportSurvivesAReload(t *testing.T) {
	fail := false
	lab := &fakeLab{state: sampleState(), handOff: func(_ context.Context, to string) (Report, error) {
		if fail {
			return Report{From: "b", To: "a"}, errors.New("restore on a: connection refused")
		}
		return okReport("b"), nil
	}}
	_, ts := newTestServer(t, Config{Lab: lab})
	latest := ts.URL + "/api/handoffs/latest.json"

	if r := do(t, http.MethodGet, latest, "", nil); r.code != http.StatusNoContent {
		t.Fatalf("before any hand-off: status %d: %s", r.code, r.body)
	}
	posted := do(t, http.MethodPost, ts.URL+"/api/handoff", "{}", nil)
	r := do(t, http.MethodGet, latest, "", nil)
	if r.code != http.StatusOK || string(r.body) != string(posted.body) {
		t.Fatalf("after a hand-off: status %d: %s; want what POST answered: %s", r.code, r.body, posted.body)
	}
	fail = true
	do(t, http.MethodPost, ts.URL+"/api/handoff", "{}", nil)
	got := decode[Report](t, do(t, http.MethodGet, latest, "", nil).body)
	if got.OK || got.From != "b" || got.Error == "" {
		t.Errorf("after a failed hand-off the latest report is %+v; want that failure", got)
	}
}
