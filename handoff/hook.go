package handoff

import (
	"context"
	"fmt"
	"time"
)

// A Hook steers hand-offs from outside the library: a class paces them one
// step at a time, a test injects faults, a lab breaks them on purpose to
// show why each step exists. Production code sets none.
type Hook interface {
	// At is called at each step boundary on the side that runs the step:
	// on the source before each of Steps; on the target after
	// "target-prepare" and "target-restore", and before rebuilding each
	// connection with "restore CLIENT" (CLIENT as 192.0.2.10:40000). An
	// error fails the hand-off there, which before the commit (the
	// "announce" step) rolls it back; at "restore CLIENT" it refuses that
	// connection instead (its address stays on the source). After the
	// commit an error is only logged: the hand-off goes on.
	At(ctx context.Context, step string) error
	// Skip reports whether to leave a step out on purpose: "release" (the
	// source keeps the addresses, so its kernel resets the clients) or
	// "announce" (the target sends no gratuitous ARP, so the clients keep
	// sending to the source). For teaching; never in production.
	Skip(step string) bool
}

// Steps are the source's steps, in order, each preceded by Hook.At.
var Steps = []string{"quiesce", "freeze", "release", "dump", "transfer", "restore", "announce", "resume"}

// PacedTimeout bounds a paced hand-off (Options.Paced), which a person
// steps through.
const PacedTimeout = 10 * time.Minute

// at runs the hooks at a step boundary: the hand-off's own, then the
// node's.
func at(ctx context.Context, step string, hooks ...Hook) error {
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
func skip(step string, hooks ...Hook) bool {
	for _, h := range hooks {
		if h != nil && h.Skip(step) {
			return true
		}
	}
	return false
}
