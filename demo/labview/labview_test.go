package labview

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff"
	"github.com/sockshift/sockshift/web"
)

func TestStepRunState(t *testing.T) {
	r := &StepRun{From: "a", To: "b"}
	st := r.State(nil)
	if st.From != "a" || st.To != "b" || st.Waiting != "" || len(st.Done) != 0 || len(st.Phases) != len(handoff.Steps()) {
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
	// The page shows the moved TCP state by these names.
	sum := handoff.TCPSummary{SendSeq: 1, RecvSeq: 2, SndWscale: 7, MSS: 1460, Unsent: 9, RcvBuf: 100}
	rep := Report("a", "b", web.HandOffRequest{}, node.HandoffResult{Moved: []node.Moved{{Client: "c", Before: sum, After: sum}}}, time.Now(), time.Now())
	b, _ := json.Marshal(rep)
	var raw map[string]any
	json.Unmarshal(b, &raw)
	mv := raw["moved"].([]any)[0].(map[string]any)["before"].(map[string]any)
	for _, k := range []string{"send_seq", "recv_seq", "snd_wnd", "rcv_wnd", "snd_wscale", "rcv_wscale", "mss", "timestamp", "sack", "timestamps", "recv_queue", "unacked", "unsent", "sndbuf", "rcvbuf"} {
		if _, ok := mv[k]; !ok {
			t.Errorf("TCP state lacks %q: %s", k, b)
		}
	}
	if mv["mss"] != 1460.0 || mv["unsent"] != 9.0 {
		t.Errorf("TCP state %v", mv)
	}
	if Other("a") != "b" || Other("b") != "a" {
		t.Fatal("other")
	}
}
