// Package labview turns what the servers' control APIs answer into what
// the console shows. The one-host demo (package appliance) and the console
// of the VM lab (package console) share it.
package labview

import (
	"slices"

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
