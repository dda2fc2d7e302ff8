package handoff

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// A Hook steers hand-offs from outside the library: a class paces them one
// step at a time, a test injects faults, a lab breaks them on purpose to
// show why each step exists. Production code sets none.
type Hook interface {
	// At is called at each step boundary on the side that runs the step:
	// on the source before each of Steps (StepResume comes once the
	// target serves, before the source hands it the caught packets); on
	// the target at StepTargetPrepare and StepTargetRestore, and before
	// rebuilding each connection with RestoreConn(client). An error fails
	// the hand-off there, which before the commit (StepAnnounce) rolls it
	// back; at RestoreConn it refuses that connection instead (its address
	// stays on the source). After the commit an error is only logged: the
	// hand-off goes on.
	At(ctx context.Context, step Step) error
	// Skip reports whether to leave a step out on purpose: StepRelease
	// (the source keeps the addresses, so its kernel resets the clients)
	// or StepAnnounce (the target sends no gratuitous ARP, so the clients
	// keep sending to the source). For teaching; never in production.
	Skip(step Step) bool
}

// Step is one step of a hand-off: what Hook.At is called at and what
// Error.Phase names.
type Step string

// The steps. The source runs StepPrepare (the channel and the catchers,
// no hook), then Steps in order; the target has two of its own.
const (
	StepPrepare  Step = "prepare"
	StepQuiesce  Step = "quiesce"
	StepFreeze   Step = "freeze"
	StepRelease  Step = "release"
	StepDump     Step = "dump"
	StepTransfer Step = "transfer"
	StepRestore  Step = "restore"  // waiting for the target's word that all are rebuilt
	StepAnnounce Step = "announce" // the decision: commit, and the target announces
	StepResume   Step = "resume"

	StepTargetPrepare Step = "target-prepare" // the target accepted what comes
	StepTargetRestore Step = "target-restore" // the target rebuilt every socket
)

// Steps returns the source's steps, in order, each preceded by Hook.At.
func Steps() []Step {
	return []Step{StepQuiesce, StepFreeze, StepRelease, StepDump, StepTransfer, StepRestore, StepAnnounce, StepResume}
}

// restoreConnPrefix starts the step of rebuilding one connection.
const restoreConnPrefix = "restore "

// RestoreConn is the target's step before it rebuilds the connection of
// client (its Hook may refuse that one connection).
func RestoreConn(client netip.AddrPort) Step { return Step(restoreConnPrefix + client.String()) }

// Conn returns the client of a RestoreConn step.
func (s Step) Conn() (netip.AddrPort, bool) {
	rest, ok := strings.CutPrefix(string(s), restoreConnPrefix)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(rest)
	return ap, err == nil
}

// PacedTimeout bounds a paced hand-off (Options.Paced), which a person
// steps through.
const PacedTimeout = 10 * time.Minute

// at runs the hooks at a step boundary: the hand-off's own, then the
// node's.
func at(ctx context.Context, step Step, hooks ...Hook) error {
	for _, h := range hooks {
		if h == nil {
			continue
		}
		if err := h.At(ctx, step); err != nil {
			return fmt.Errorf("at %s: %w", step, err)
		}
	}
	return nil
}

// skip reports whether any hook leaves the step out.
func skip(step Step, hooks ...Hook) bool {
	for _, h := range hooks {
		if h != nil && h.Skip(step) {
			return true
		}
	}
	return false
}
