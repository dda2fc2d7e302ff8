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

// Source is one server that hands services over, and which (nil: all it
// holds).
type Source struct {
	From     string
	Services []string
}

// PlanHandOff finds the target and the servers to hand off from: each
// server other than the target that holds a service asked for. Without a
// target, the services leave the holder of the VIP (echo's address).
func PlanHandOff(st web.State, req web.HandOffRequest) (string, []Source, error) {
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
	to := req.To
	if to == "" {
		if st.Holder == "" {
			return "", nil, errors.New("no server holds the VIP")
		}
		to = Other(st.Holder)
	}
	var sources []Source
	for _, role := range []string{"a", "b"} {
		if role == to {
			continue
		}
		src := Source{From: role}
		for _, name := range wanted {
			if holder[name] == role {
				src.Services = append(src.Services, name)
			}
		}
		if len(src.Services) == 0 {
			continue
		}
		if req.Services == nil {
			src.Services = nil // all it holds
		}
		sources = append(sources, src)
	}
	if len(sources) == 0 {
		return to, nil, fmt.Errorf("server %s already holds %s", to, strings.Join(wanted, " and "))
	}
	return to, sources, nil
}

// HandOffRest runs the hand-offs of the sources after the first (whose
// answer is res, err), while each succeeds, and adds each answer to res.
func HandOffRest(ctx context.Context, res node.HandoffResult, err error, to string, sources []Source, control func(role string) *node.Client) (node.HandoffResult, error) {
	for _, src := range sources[1:] {
		if err != nil || !res.OK {
			break
		}
		var more node.HandoffResult
		more, err = control(src.From).HandOffWith(ctx, node.HandoffRequest{To: to, Services: src.Services})
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
