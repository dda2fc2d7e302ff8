package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// controlServer is the control API of a node with no library node behind
// it: enough for the routes that answer before they reach it.
func controlServer(t *testing.T) (*Client, *nodeHook) {
	t.Helper()
	hk := &nodeHook{}
	m := &Main{Name: "a"}
	srv := httptest.NewServer(m.handler(nil, nil, hk))
	t.Cleanup(srv.Close)
	return NewClient(strings.TrimPrefix(srv.URL, "http://")), hk
}

// Every POST route reads its body the same way: no body is the zero
// request, bad JSON is 400 with an error, on each route alike.
func TestControlBodiesReadAlike(t *testing.T) {
	c, hk := controlServer(t)
	routes := map[string]int{ // what an empty body gets: the zero request's answer
		"/break":   http.StatusOK,         // disarms
		"/step":    http.StatusConflict,   // nothing waits for a step
		"/handoff": http.StatusBadRequest, // no peer named ""
	}
	for path, want := range routes {
		for _, body := range []string{"", "{}"} {
			resp, err := http.Post("http://"+c.Control+path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			var eb errorBody
			json.NewDecoder(resp.Body).Decode(&eb)
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("POST %s %q: %s (%q), want %d", path, body, resp.Status, eb.Error, want)
			}
		}
		for _, bad := range []string{"{", "[]", "null x", "{} {}", strings.Repeat(" ", maxRequest) + "{}"} {
			resp, err := http.Post("http://"+c.Control+path, "application/json", strings.NewReader(bad))
			if err != nil {
				t.Fatal(err)
			}
			var eb errorBody
			err = json.NewDecoder(resp.Body).Decode(&eb)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || err != nil || !strings.HasPrefix(eb.Error, "bad JSON") {
				t.Errorf("POST %s %.10q: %s, error %q (%v); want 400 bad JSON", path, bad, resp.Status, eb.Error, err)
			}
		}
	}
	// /break arms and an empty one disarms.
	if err := c.Break(context.Background(), BreakRequest{SkipAnnounce: true}); err != nil || !hk.armed {
		t.Fatalf("break: %v, armed %v", err, hk.armed)
	}
	if err := c.call(context.Background(), http.MethodPost, "/break", nil, nil); err != nil || hk.armed {
		t.Fatalf("empty break: %v, armed %v", err, hk.armed)
	}
}

// The client's one request function: a refusal is a *StatusError with the
// node's words; a failed hand-off is a result, not an error.
func TestClientRefusals(t *testing.T) {
	c, _ := controlServer(t)
	ctx := context.Background()
	_, err := c.Step(ctx, false)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusConflict || !strings.Contains(err.Error(), "no hand-off is waiting") {
		t.Fatalf("step with none waiting: %v", err)
	}
	res, err := c.HandOff(ctx, "z")
	if err != nil || res.OK || !strings.Contains(res.Error, `no peer named "z"`) {
		t.Fatalf("hand-off to an unknown peer: %+v, %v", res, err)
	}
	if err := c.call(ctx, http.MethodGet, "/nothing", nil, nil); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("unknown route: %v", err)
	}
	if _, err := NewClient("127.0.0.1:1").State(ctx); err == nil || errors.As(err, &se) {
		t.Fatalf("a node that cannot be asked: %v, want a plain error", err)
	}
}
