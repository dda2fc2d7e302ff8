package appliance

import (
	"time"

	"github.com/sockshift/sockshift/demo/capture"
)

// A step-mode hand-off lasts as long as the class talks, and the ring
// holds seconds of a busy client: at each step the frames that led to it
// and, a moment later, those that followed it are copied out, so the
// capture and the report keep what happened around every phase.
const (
	stepFrames = 2000        // frames copied each side of a step
	stepAfter  = time.Second // when the frames after a step are copied
	// stepCaptureMax bounds a step-mode capture: the frames nearest
	// each step, its start and its end.
	stepCaptureMax = 60000
)

// stepCapture is what a running step-mode hand-off has copied.
type stepCapture struct {
	gen    int
	marks  []time.Time
	copies [][]capture.Frame
}

// startStepCapture starts the copies of a step-mode hand-off.
func (a *Appliance) startStepCapture(at time.Time) {
	a.stepMu.Lock()
	a.steps = stepCapture{gen: a.steps.gen + 1, marks: []time.Time{at}}
	a.stepMu.Unlock()
}

// markStep notes a step released now and copies the frames around it.
func (a *Appliance) markStep() {
	now := time.Now()
	a.stepMu.Lock()
	defer a.stepMu.Unlock()
	if len(a.steps.marks) == 0 {
		return
	}
	prev := a.steps.marks[len(a.steps.marks)-1]
	a.steps.marks = append(a.steps.marks, now)
	a.steps.copies = append(a.steps.copies, a.ring.Ends(prev, now, stepFrames))
	gen := a.steps.gen
	time.AfterFunc(stepAfter, func() {
		after := a.ring.Ends(now, now.Add(stepAfter), stepFrames)
		a.stepMu.Lock()
		if a.steps.gen == gen {
			a.steps.copies = append(a.steps.copies, after)
		}
		a.stepMu.Unlock()
	})
}

// frames are the client's frames from from to to: the ring's, and what a
// step-mode hand-off copied out of it before it was overwritten.
func (a *Appliance) frames(from, to time.Time) (frames []capture.Frame, marks []time.Time) {
	a.stepMu.Lock()
	copies := append([][]capture.Frame{}, a.steps.copies...)
	marks = append(marks, a.steps.marks...)
	a.stepMu.Unlock()
	ring := a.ring.Window(from, to)
	lists := [][]capture.Frame{ring}
	for _, c := range copies {
		if len(c) > 0 && !c[len(c)-1].Time.Before(from) && (len(ring) == 0 || c[0].Time.Before(ring[0].Time)) {
			lists = append(lists, c) // frames the ring has lost since
		}
	}
	if len(lists) == 1 {
		frames = ring // nothing lost: as the ring has them, oldest first
	} else {
		frames = capture.Merge(lists...)
	}
	lo, hi := 0, len(frames)
	for lo < hi && frames[lo].Time.Before(from) {
		lo++
	}
	for hi > lo && frames[hi-1].Time.After(to) {
		hi--
	}
	kept := marks[:0]
	for _, m := range marks {
		if !m.Before(from) && !m.After(to) {
			kept = append(kept, m)
		}
	}
	return frames[lo:hi], kept
}
