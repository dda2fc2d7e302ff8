// Package labview turns what the servers' control APIs answer into what
// the console shows. The one-host demo (package appliance) and the console
// of the VM lab (package console) share it.
package labview

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff"
	"github.com/sockshift/sockshift/web"
)

// StepRun is a step-mode hand-off in progress.
type StepRun struct {
	From, To string
	Break    *web.Break
}

// State is the console's view of the run, with the source's step state
// (nil before the source reported one).
func (r *StepRun) State(ns *node.StepState) *web.StepState {
	st := &web.StepState{From: r.From, To: r.To, Phases: StepNames(), Done: []string{}, Break: r.Break}
	if ns != nil {
		st.Waiting, st.Done = ns.Waiting, slices.Clone(ns.Done)
	}
	return st
}

// Report is a server's answer to a hand-off request as the console shows
// it, over [start, end] on the console's clock; measurements and notes are
// the caller's to add.
func Report(from, to string, req web.HandOffRequest, res node.HandoffResult, start, end time.Time) web.Report {
	rep := web.Report{OK: res.OK, From: from, To: to, Connections: res.Connections, TotalUS: res.TotalUS, Error: res.Error,
		StartedMS: start.UnixMilli(), EndedMS: end.UnixMilli(), Caught: res.Caught, RolledBack: res.RolledBack,
		Step: req.Step, Break: req.Break}
	for _, p := range res.Phases {
		rep.Phases = append(rep.Phases, web.Phase(p))
	}
	for _, m := range res.Moved {
		rep.Moved = append(rep.Moved, web.Moved{Client: m.Client, Before: m.Before, After: m.After})
	}
	rep.Services, rep.Addresses = res.Services, res.Addresses
	for _, s := range res.Stayed {
		rep.Stayed = append(rep.Stayed, web.Stayed(s))
	}
	return rep
}

// Connections lists a server's connections as the console shows them.
func Connections(server string, cs []node.Connection) []web.Connection {
	out := make([]web.Connection, 0, len(cs))
	for _, c := range cs {
		out = append(out, web.Connection{Service: c.Service, Client: c.Client, Local: c.Local, Node: server, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
	}
	return out
}

// Other is the other server of the lab's two.
func Other(server string) string {
	if server == "a" {
		return "b"
	}
	return "a"
}

// next is the server after server in the lab's list (the first after the
// last).
func next(servers []string, server string) string {
	i := slices.Index(servers, server)
	if i < 0 || len(servers) == 0 {
		return Other(server)
	}
	return servers[(i+1)%len(servers)]
}

// Source is one server that hands services over, the server it hands
// them to, and which services (nil: all it holds).
type Source struct {
	From, To string
	Services []string
}

// PlanHandOff finds the servers to hand off from, and to. With a target,
// each other server that holds a service asked for hands it there.
// Without one, every service leaves the holder of the VIP (echo's
// address) for the next server; services named alone each move from
// wherever they are to the server after it. The target returned is the
// first source's.
//
// A request that asks for the impossible (a server the lab does not have,
// a target that already holds everything that would move) is an error
// wrapping web.ErrBadRequest: nothing was tried.
func PlanHandOff(st web.State, req web.HandOffRequest) (string, []Source, error) {
	var servers []string
	for _, n := range st.Nodes {
		servers = append(servers, n.Name)
	}
	if len(servers) == 0 {
		servers = []string{"a", "b"} // a state without its nodes
	}
	if req.To != "" && !slices.Contains(servers, req.To) {
		return "", nil, fmt.Errorf("%w: no server %q (the lab has %s)", web.ErrBadRequest, req.To, strings.Join(servers, ", "))
	}
	holder := map[string]string{}
	for _, s := range st.Services {
		holder[s.Name] = s.Holder
	}
	wanted := req.Services
	if wanted == nil {
		for _, s := range st.Services {
			wanted = append(wanted, s.Name)
		}
	}
	target := func(service string) (string, error) {
		switch {
		case req.To != "":
			return req.To, nil
		case req.Services == nil:
			if st.Holder == "" {
				return "", errors.New("no server holds the VIP")
			}
			return next(servers, st.Holder), nil
		case holder[service] == "":
			return "", fmt.Errorf("no server holds %s's address", service)
		}
		return next(servers, holder[service]), nil
	}
	var sources []Source
	for _, from := range servers {
		for _, name := range wanted {
			to, err := target(name)
			if err != nil {
				return "", nil, err
			}
			if holder[name] != from || to == from {
				continue
			}
			i := slices.IndexFunc(sources, func(s Source) bool { return s.From == from && s.To == to })
			if i < 0 {
				sources = append(sources, Source{From: from, To: to})
				i = len(sources) - 1
			}
			sources[i].Services = append(sources[i].Services, name)
		}
	}
	if req.Services == nil {
		for i := range sources {
			sources[i].Services = nil // all it holds
		}
	}
	if len(sources) == 0 {
		to, _ := target("")
		return to, nil, fmt.Errorf("%w: server %s already holds %s", web.ErrBadRequest, to, strings.Join(wanted, " and "))
	}
	return sources[0].To, sources, nil
}

// HandOffRest runs the hand-offs of the sources after the first (whose
// answer is res, err), each to its own target, while each succeeds, and
// adds each answer to res.
func HandOffRest(ctx context.Context, res node.HandoffResult, err error, sources []Source, control func(role string) *node.Client) (node.HandoffResult, error) {
	for _, src := range sources[1:] {
		if err != nil || !res.OK {
			break
		}
		var more node.HandoffResult
		more, err = control(src.From).HandOffWith(ctx, node.HandoffRequest{To: src.To, Services: src.Services})
		res = MergeResults(res, more)
	}
	return res, err
}

// MergeResults adds a second server's hand-off to the first's.
func MergeResults(r, more node.HandoffResult) node.HandoffResult {
	r.OK = r.OK && more.OK
	r.Connections += more.Connections
	r.TotalUS += more.TotalUS
	r.Phases = append(r.Phases, more.Phases...)
	r.Caught += more.Caught
	r.Moved = append(r.Moved, more.Moved...)
	r.Services = append(r.Services, more.Services...)
	r.Addresses = append(r.Addresses, more.Addresses...)
	r.Stayed = append(r.Stayed, more.Stayed...)
	r.Closed += more.Closed
	r.RolledBack = r.RolledBack || more.RolledBack
	if more.Error != "" {
		r.Error = strings.TrimSpace(r.Error + "; " + more.Error)
	}
	return r
}

// AddServices adds a server's services to the console's list, with the
// server as holder of those whose address it holds.
func AddServices(st *web.State, server string, svcs []node.Service) {
	for _, sv := range svcs {
		i := slices.IndexFunc(st.Services, func(s web.Service) bool { return s.Name == sv.Name })
		if i < 0 {
			st.Services = append(st.Services, web.Service{Name: sv.Name, Address: sv.Address, Port: sv.Port})
			i = len(st.Services) - 1
		}
		if sv.Holds {
			st.Services[i].Holder = server
		}
	}
}

// StepNames are the library's steps, in order, as the console names them.
func StepNames() []string {
	var out []string
	for _, s := range handoff.Steps() {
		out = append(out, string(s))
	}
	return out
}
