package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sockshift/sockshift/handoff"
)

// control is the node's control API (see doc.go): one small handler per
// route, each taking its request already read by readJSON.
type control struct {
	m    *Main
	n    *handoff.Node
	run  []started
	hook *nodeHook
	step *stepper
}

func (m *Main) handler(n *handoff.Node, run []started, hk *nodeHook) http.Handler {
	c := &control{m: m, n: n, run: run, hook: hk, step: &stepper{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		st, err := c.state()
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /handoff", post(c.handOff))
	mux.HandleFunc("POST /step", post(c.stepOn))
	mux.HandleFunc("POST /break", post(c.breakNext))
	mux.HandleFunc("POST /vip", post(c.setVIP))
	return mux
}

// maxRequest bounds a request body: a few short fields.
const maxRequest = 4 << 10

// post serves a POST route: its JSON body read into a Req (an empty body
// is the zero request, on every route), answered with what h returns.
func post[Req any](h func(context.Context, Req) (int, any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if err := readJSON(r.Body, &req); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		code, res := h(r.Context(), req)
		writeJSON(w, code, res)
	}
}

// readJSON reads one JSON value of at most maxRequest bytes into v; an
// empty body leaves v as it is.
func readJSON(body io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(body, maxRequest+1))
	switch {
	case err != nil:
		return fmt.Errorf("reading the body: %w", err)
	case len(b) > maxRequest:
		return fmt.Errorf("bad JSON: the body is over %d bytes", maxRequest)
	case len(bytes.TrimSpace(b)) == 0:
		return nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	return nil
}

// errorBody is every refusal's answer.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// state is GET /state: this node, its services and their connections.
func (c *control) state() (State, error) {
	holds, err := c.n.HoldsVIP()
	if err != nil {
		return State{}, err
	}
	ns := State{Name: c.m.Name, Address: c.m.Addr.String(), MAC: c.n.HardwareAddr().String(),
		HoldsVIP: holds, Busy: c.n.Busy(), Step: c.step.state(), Connections: []Connection{}}
	for _, rv := range c.n.Recoveries() {
		ns.Recovered = append(ns.Recovered, rv.String())
	}
	for _, r := range c.run {
		held, err := c.n.Holds(r.addr)
		if err != nil {
			return State{}, err
		}
		ns.Services = append(ns.Services, Service{Name: r.def.name, Address: r.addr.String(), Port: r.port, Holds: held})
		ns.Connections = append(ns.Connections, r.connections()...)
	}
	return ns, nil
}

// handOff is POST /handoff: one hand-off to a peer, answered when done.
func (c *control) handOff(ctx context.Context, req HandoffRequest) (int, any) {
	peer, ok := c.m.Peers[req.To]
	if !ok {
		return http.StatusBadRequest, HandoffResult{From: c.m.Name, Error: fmt.Sprintf("no peer named %q", req.To)}
	}
	hh := &handOffHook{keepVIP: req.KeepVIP}
	opts := &handoff.Options{Services: req.Services, Hook: hh, Paced: req.Step}
	if req.Step {
		hh.step = c.step
		defer c.step.reset()
	}
	rep, err := c.n.HandOff(ctx, peer, opts)
	res := resultOf(c.m.Name, req.To, rep, err)
	status := http.StatusOK
	switch {
	case err == nil:
	case errors.Is(err, handoff.ErrBusy):
		status = http.StatusConflict
	case errors.Is(err, handoff.ErrNoService):
		status = http.StatusBadRequest
	default:
		status = http.StatusBadGateway
	}
	return status, res
}

// resultOf is the library's report as POST /handoff answers it.
func resultOf(from, to string, rep *handoff.Report, err error) HandoffResult {
	res := HandoffResult{OK: err == nil, From: from, To: to, Connections: rep.Connections, TotalUS: rep.Total.Microseconds(),
		Caught: rep.Caught, Services: rep.Services, Addresses: []string{}, Stayed: []Stayed{}, Closed: rep.Closed}
	for _, p := range rep.Phases {
		res.Phases = append(res.Phases, Phase{Name: p.Name, US: p.Duration.Microseconds()})
	}
	for _, a := range rep.Addrs {
		res.Addresses = append(res.Addresses, a.String())
	}
	for _, sc := range rep.Stayed {
		res.Stayed = append(res.Stayed, Stayed{Service: sc.Service, Client: sc.Client.String(), Local: sc.Local.String(), Reason: sc.Reason})
	}
	for _, mc := range rep.Moved {
		res.Moved = append(res.Moved, Moved{Client: mc.Client.String(), Before: mc.Before, After: mc.After})
	}
	if err != nil {
		res.Error = err.Error()
		var he *handoff.Error
		res.RolledBack = errors.As(err, &he) && he.RolledBack
	}
	return res
}

// stepOn is POST /step: release the phase a step-mode hand-off waits for,
// or roll it back.
func (c *control) stepOn(_ context.Context, req StepRequest) (int, any) {
	if req.Abort && c.step.committed() {
		return http.StatusConflict, errorBody{"the hand-off is committed (past the point of no return): it can only go forward"}
	}
	phase, ok := c.step.advance(req.Abort)
	if !ok {
		return http.StatusConflict, errorBody{"no hand-off is waiting for a step"}
	}
	return http.StatusOK, stepAnswer{Phase: phase}
}

// stepAnswer is what POST /step answers.
type stepAnswer struct {
	Phase string `json:"phase"`
}

// breakNext is POST /break: arm the next incoming hand-off.
func (c *control) breakNext(_ context.Context, req BreakRequest) (int, any) {
	c.hook.arm(req.SkipAnnounce)
	return http.StatusOK, req
}

// setVIP is POST /vip: the plain fail-over of a server without hand-off.
func (c *control) setVIP(_ context.Context, req VIPRequest) (int, any) {
	res := VIPResult{}
	if req.CloseConnections {
		for _, r := range c.run {
			res.Closed += r.svc.CloseConnections()
		}
	}
	var err error
	if req.Hold {
		err = c.n.TakeVIP()
	} else {
		err = c.n.DropVIP()
	}
	if err != nil {
		return http.StatusInternalServerError, errorBody{err.Error()}
	}
	return http.StatusOK, res
}
