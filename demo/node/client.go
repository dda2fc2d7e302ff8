package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// StatusError is a node's refusal: the status it answered, and why.
type StatusError struct {
	Control, Op string // the node, and the route asked ("state", "handoff", ...)
	Status      string // "409 Conflict"
	Code        int
	Msg         string // the answer's "error", or its text
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("node %s: %s: %s: %s", e.Control, e.Op, e.Status, e.Msg)
}

// maxAnswer bounds an answer: a state lists every connection.
const maxAnswer = 256 << 20

// call sends one request to the node: in, unless nil, as its JSON body;
// the JSON answer goes into out (unless nil) whatever the status, since a
// refusal may say more than its error. A status other than 200 is a
// *StatusError.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	op := strings.TrimPrefix(path, "/")
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("node %s: %s: %w", c.Control, op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("node %s: %w", c.Control, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("node %s: %s: %s: %w", c.Control, op, resp.Status, err)
	}
	var decodeErr error
	if out != nil {
		decodeErr = json.Unmarshal(b, out)
	}
	if resp.StatusCode != http.StatusOK {
		se := &StatusError{Control: c.Control, Op: op, Status: resp.Status, Code: resp.StatusCode, Msg: string(bytes.TrimSpace(b))}
		var eb errorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			se.Msg = eb.Error
		}
		return se
	}
	if decodeErr != nil {
		return fmt.Errorf("node %s: %s: %w", c.Control, op, decodeErr)
	}
	return nil
}

// State asks the node for its state.
func (c *Client) State(ctx context.Context) (State, error) {
	var st State
	return st, c.call(ctx, http.MethodGet, "/state", nil, &st)
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
	err := c.call(ctx, http.MethodPost, "/handoff", r, &res)
	if se := (*StatusError)(nil); errors.As(err, &se) && res.Error != "" {
		return res, nil // the node answered: the hand-off failed
	}
	return res, err
}

// SetVIP takes or drops the VIP, optionally ending every connection first.
func (c *Client) SetVIP(ctx context.Context, r VIPRequest) (VIPResult, error) {
	var res VIPResult
	return res, c.call(ctx, http.MethodPost, "/vip", r, &res)
}

// Break arms the node's next incoming hand-off to leave a step out.
func (c *Client) Break(ctx context.Context, r BreakRequest) error {
	return c.call(ctx, http.MethodPost, "/break", r, nil)
}

// Step releases the phase a step-mode hand-off waits for (or, with abort,
// rolls it back) and returns its name.
func (c *Client) Step(ctx context.Context, abort bool) (string, error) {
	var out stepAnswer
	err := c.call(ctx, http.MethodPost, "/step", StepRequest{Abort: abort}, &out)
	return out.Phase, err
}
