package node_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/labview"
	"github.com/sockshift/sockshift/demo/node"
)

// stepThrough runs a step-mode hand-off a->b, releasing each phase as it
// comes, and aborting at abortAt (if not ""). It returns the result and
// the phases seen.
func stepThrough(t *testing.T, env *labtest.Env, abortAt string) (node.HandoffResult, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan node.HandoffResult, 1)
	go func() {
		res, err := env.Control("a").HandOffWith(ctx, node.HandoffRequest{To: "b", Step: true})
		if err != nil {
			res.Error = err.Error()
		}
		done <- res
	}()
	var seen []string
	for {
		select {
		case res := <-done:
			return res, seen
		default:
		}
		st, err := env.Control("a").State(ctx)
		if err != nil || st.Step == nil || st.Step.Waiting == "" {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// While a phase waits, the hand-off really is paused there.
		seen = append(seen, st.Step.Waiting)
		phase, err := env.Control("a").Step(ctx, st.Step.Waiting == abortAt)
		if err != nil {
			t.Fatalf("step: %v", err)
		}
		if phase != st.Step.Waiting {
			t.Fatalf("released %q, but %q was waiting", phase, st.Step.Waiting)
		}
	}
}

func TestStepMode(t *testing.T) {
	env := labtest.Start(t, nil)
	outside := startRawStream(env.DialVIP(7))
	res, seen := stepThrough(t, env, "")
	if !res.OK {
		t.Fatalf("step-mode hand-off failed: %s", res.Error)
	}
	if !slices.Equal(seen, labview.StepNames()) {
		t.Fatalf("phases stepped: %v, want %v", seen, labview.StepNames())
	}
	if h := env.Holder(); h != "b" {
		t.Fatalf("VIP on %q, want b", h)
	}
	outside.finish(t)
}

func TestStepModeAbortRollsBack(t *testing.T) {
	env := labtest.Start(t, nil)
	outside := startRawStream(env.DialVIP(7))
	res, seen := stepThrough(t, env, "restore")
	if res.OK || !res.RolledBack {
		t.Fatalf("an abort at restore should roll back: %+v", res)
	}
	if want := labview.StepNames()[:6]; !slices.Equal(seen, want) {
		t.Fatalf("phases stepped: %v, want %v", seen, want)
	}
	if h := env.Holder(); h != "a" {
		t.Fatalf("VIP on %q, want a", h)
	}
	outside.finish(t)
}

// The break-it toggles show why the steps exist: without the announce the
// client keeps talking to the old host and gets nowhere; with the address
// left on the old host as well, that host answers with a reset.
func TestBreakIt(t *testing.T) {
	for _, tc := range []struct {
		name      string
		req       node.HandoffRequest
		wantReset bool
		leaky     bool // on a host whose forwarding and ARP settings leak into new namespaces
	}{
		{"skip-announce", node.HandoffRequest{To: "b"}, false, false},
		{"keep-vip-and-skip-announce", node.HandoffRequest{To: "b", KeepVIP: true}, true, false},
		{"skip-announce-on-leaky-host", node.HandoffRequest{To: "b"}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.leaky {
				labtest.LeakyHost(t)
			}
			env := labtest.Start(t, nil)
			c := env.DialVIP(7)
			// B learns the client's MAC first: otherwise its own ARP query
			// for the client, sent from the VIP, announces it all the same.
			for _, hop := range [][2]string{{"a", "b"}, {"b", "a"}} {
				if res := env.HandOff(hop[0], hop[1]); !res.OK {
					t.Fatal(res.Error)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := env.Control("b").Break(ctx, node.BreakRequest{SkipAnnounce: true}); err != nil {
				t.Fatal(err)
			}
			res, err := env.Control("a").HandOffWith(ctx, tc.req)
			if err != nil || !res.OK {
				t.Fatalf("broken hand-off: %+v %v", res, err)
			}
			time.Sleep(300 * time.Millisecond) // past the catcher's grace period
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte("anyone there?"))
			_, err = io.ReadFull(c, make([]byte, 13))
			reset := errors.Is(err, syscall.ECONNRESET)
			if tc.wantReset && !reset {
				t.Fatalf("want a reset from the old host, got %v", err)
			}
			if !tc.wantReset && (err == nil || reset) {
				t.Fatalf("want a stalled connection (no answer, no reset), got %v", err)
			}
		})
	}
}
