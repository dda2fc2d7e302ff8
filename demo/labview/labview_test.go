package labview

import (
	"testing"

	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff"
)

func TestStepRunState(t *testing.T) {
	r := &StepRun{From: "a", To: "b"}
	st := r.State(nil)
	if st.From != "a" || st.To != "b" || st.Waiting != "" || len(st.Done) != 0 || len(st.Phases) != len(handoff.Steps) {
		t.Fatalf("before the source reports: %+v", st)
	}
	done := []string{"quiesce"}
	st = r.State(&node.StepState{Waiting: "freeze", Done: done})
	done[0] = "changed"
	if st.Waiting != "freeze" || len(st.Done) != 1 || st.Done[0] != "quiesce" {
		t.Fatalf("with the source's state: %+v (must not share its slice)", st)
	}
}

func TestMappings(t *testing.T) {
	cs := Connections("b", []node.Connection{{Service: "echo", Client: "192.0.2.10:1", BytesIn: 3, BytesOut: 2}})
	if len(cs) != 1 || cs[0].Node != "b" || cs[0].Service != "echo" || cs[0].BytesIn != 3 || cs[0].BytesOut != 2 {
		t.Fatalf("connections: %+v", cs)
	}
	ts := TCPState(handoff.TCPSummary{SendSeq: 1, RecvSeq: 2, SndWscale: 7, MSS: 1460, Unsent: 9, RcvBuf: 100})
	if ts.SendSeq != 1 || ts.RecvSeq != 2 || ts.SndWscale != 7 || ts.MSS != 1460 || ts.Unsent != 9 || ts.RcvBuf != 100 {
		t.Fatalf("tcp state: %+v", ts)
	}
	if Other("a") != "b" || Other("b") != "a" {
		t.Fatal("other")
	}
}
