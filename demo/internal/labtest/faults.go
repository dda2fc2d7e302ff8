package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff/nstest"
)

// StartConfig is Start with the cluster's whole Config (for example
// Restart, so a killed server comes back as under systemd). Prefix, Exe and
// RunDir are filled in when empty.
func StartConfig(t testing.TB, cfg cluster.Config) *Env {
	t.Helper()
	nstest.Privileged(t)
	exe := Binary(t)
	if cfg.Exe == "" {
		cfg.Exe = exe
	}
	if cfg.Prefix == "" {
		cfg.Prefix = Prefix()
	}
	if cfg.RunDir == "" {
		dir, err := os.MkdirTemp("", "ss") // short: control sockets live here
		if err != nil {
			t.Fatal(err)
		}
		cfg.RunDir = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cfg)
	if err != nil {
		os.RemoveAll(cfg.RunDir)
		t.Fatalf("start the lab: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return &Env{Cluster: c, t: t, Exe: cfg.Exe}
}

// PostHandOff sends POST /handoff to a server's control socket and returns
// the HTTP status with the answer, so a test can check the status itself
// (409 for a node that is busy).
func (e *Env) PostHandOff(ctx context.Context, from string, req node.HandoffRequest) (int, node.HandoffResult, error) {
	var res node.HandoffResult
	path := e.ControlPath(from)
	hc := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://node/handoff", bytes.NewReader(body))
	if err != nil {
		return 0, res, err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(hr)
	if err != nil {
		return 0, res, fmt.Errorf("node %s: %w", from, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, res, fmt.Errorf("node %s: hand-off answer: %w", from, err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return resp.StatusCode, res, fmt.Errorf("node %s: hand-off answer (%s) %q: %w", from, resp.Status, b, err)
	}
	return resp.StatusCode, res, nil
}

// WaitRestarted waits until a server that was killed (with the cluster's
// Restart set) is down and then answers again.
func (e *Env) WaitRestarted(role string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	down := false
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.Control(role).State(ctx)
		cancel()
		switch {
		case err != nil:
			down = true
		case down:
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("server %s did not come back within %v (seen down: %v)", role, within, down)
}
