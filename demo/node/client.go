package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Client talks to a node's control API.
type Client struct {
	Control string // as given to the node's --control
	// Token is the control token (ControlToken), needed when Control is
	// host:port.
	Token string
	http  *http.Client
}

// NewClient returns a client for the control API at control.
func NewClient(control string) *Client {
	c := &Client{Control: control}
	tr := &http.Transport{DisableKeepAlives: true}
	if strings.Contains(control, "/") {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", control)
		}
	}
	c.http = &http.Client{Transport: tr}
	return c
}

func (c *Client) url(path string) string {
	if strings.Contains(c.Control, "/") {
		return "http://node" + path
	}
	return "http://" + c.Control + path
}

func (c *Client) do(req *http.Request) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return c.http.Do(req)
}

// State asks the node for its state.
func (c *Client) State(ctx context.Context) (State, error) {
	var st State
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/state"), nil)
	if err != nil {
		return st, err
	}
	resp, err := c.do(req)
	if err != nil {
		return st, fmt.Errorf("node %s: %w", c.Control, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return st, fmt.Errorf("node %s: state: %s: %s", c.Control, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("node %s: state: %w", c.Control, err)
	}
	return st, nil
}

// HandOff asks the node to hand every connection to peer. A failed hand-off
// is a result with OK false, not an error; errors are for a node that
// could not be asked.
func (c *Client) HandOff(ctx context.Context, peer string) (HandoffResult, error) {
	return c.HandOffWith(ctx, HandoffRequest{To: peer})
}

// HandOffWith is HandOff with every option of the request.
func (c *Client) HandOffWith(ctx context.Context, r HandoffRequest) (HandoffResult, error) {
	var res HandoffResult
	body, _ := json.Marshal(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/handoff"), bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.do(req)
	if err != nil {
		return res, fmt.Errorf("node %s: %w", c.Control, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return res, fmt.Errorf("node %s: hand-off answer (%s): %w", c.Control, resp.Status, err)
	}
	return res, nil
}

// SetVIP takes or drops the VIP, optionally ending every connection first.
func (c *Client) SetVIP(ctx context.Context, r VIPRequest) (VIPResult, error) {
	var res VIPResult
	body, _ := json.Marshal(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/vip"), bytes.NewReader(body))
	if err != nil {
		return res, err
	}
	resp, err := c.do(req)
	if err != nil {
		return res, fmt.Errorf("node %s: %w", c.Control, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return res, fmt.Errorf("node %s: vip: %s: %s", c.Control, resp.Status, bytes.TrimSpace(b))
	}
	return res, json.NewDecoder(resp.Body).Decode(&res)
}

// Break arms the node's next incoming hand-off to leave a step out.
func (c *Client) Break(ctx context.Context, r BreakRequest) error {
	body, _ := json.Marshal(r)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/break"), bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return fmt.Errorf("node %s: %w", c.Control, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("node %s: break: %s: %s", c.Control, resp.Status, bytes.TrimSpace(b))
	}
	return nil
}

// Step releases the phase a step-mode hand-off waits for (or, with abort,
// rolls it back) and returns its name.
func (c *Client) Step(ctx context.Context, abort bool) (string, error) {
	body, _ := json.Marshal(StepRequest{Abort: abort})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/step"), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := c.do(req)
	if err != nil {
		return "", fmt.Errorf("node %s: %w", c.Control, err)
	}
	defer resp.Body.Close()
	var out struct {
		Phase string `json:"phase"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&out); err != nil {
		return "", fmt.Errorf("node %s: step: %s: %w", c.Control, resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("node %s: step: %s", c.Control, out.Error)
	}
	return out.Phase, nil
}
