// Package labview turns what the servers' control APIs answer into what
// the console shows. The one-host demo (package appliance) and the console
// of the VM lab (package console) share it.
package labview

import (
	"slices"
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
	st := &web.StepState{From: r.From, To: r.To, Phases: handoff.StepPhases, Done: []string{}, Break: r.Break}
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
		rep.Phases = append(rep.Phases, web.Phase{Name: p.Name, US: p.US})
	}
	for _, m := range res.Moved {
		rep.Moved = append(rep.Moved, web.Moved{Client: m.Client, Before: TCPState(m.Before), After: TCPState(m.After)})
	}
	return rep
}

// Connections lists a server's connections as the console shows them.
func Connections(server string, cs []node.Connection) []web.Connection {
	out := make([]web.Connection, 0, len(cs))
	for _, c := range cs {
		out = append(out, web.Connection{Service: c.Service, Client: c.Client, Node: server, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
	}
	return out
}

// TCPState is a dumped TCP state as the console shows it.
func TCPState(s handoff.TCPSummary) web.TCPState {
	return web.TCPState{SendSeq: s.SendSeq, RecvSeq: s.RecvSeq, SndWnd: s.SndWnd, RcvWnd: s.RcvWnd,
		SndWscale: s.SndWscale, RcvWscale: s.RcvWscale, MSS: s.MSS, Timestamp: s.Timestamp, SACK: s.SACK,
		Timestamps: s.Timestamps, RecvQueue: s.RecvQueue, Unacked: s.Unacked, Unsent: s.Unsent, SndBuf: s.SndBuf, RcvBuf: s.RcvBuf}
}

// Other is the other server of the lab's two.
func Other(server string) string {
	if server == "a" {
		return "b"
	}
	return "a"
}
