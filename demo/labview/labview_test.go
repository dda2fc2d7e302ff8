package labview

import (
	"encoding/json"
	"errors"
	"reflect"
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

func labState(vipHolder string, servers []string, holders map[string]string) web.State {
	st := web.State{Holder: vipHolder}
	for _, s := range servers {
		st.Nodes = append(st.Nodes, web.Node{Name: s})
	}
	for _, name := range []string{"echo", "chat"} {
		st.Services = append(st.Services, web.Service{Name: name, Holder: holders[name]})
	}
	return st
}

func TestPlanHandOff(t *testing.T) {
	ab := []string{"a", "b"}
	split := labState("a", ab, map[string]string{"echo": "a", "chat": "b"})
	together := labState("a", ab, map[string]string{"echo": "a", "chat": "a"})
	for _, c := range []struct {
		name    string
		st      web.State
		req     web.HandOffRequest
		to      string
		sources []Source
		bad     bool // refused as the client's error
	}{
		{"everything", together, web.HandOffRequest{}, "b", []Source{{From: "a", To: "b"}}, false},
		{"everything, to the holder's other", split, web.HandOffRequest{}, "b", []Source{{From: "a", To: "b"}}, false},
		{"everything to a, gathered from b", split, web.HandOffRequest{To: "a"}, "a", []Source{{From: "b", To: "a"}}, false},
		// Chat alone leaves wherever it is: b, not the VIP's holder.
		{"chat alone, from where it is", split, web.HandOffRequest{Services: []string{"chat"}}, "a", []Source{{From: "b", To: "a", Services: []string{"chat"}}}, false},
		{"both named, each from where it is", split, web.HandOffRequest{Services: []string{"echo", "chat"}}, "b",
			[]Source{{From: "a", To: "b", Services: []string{"echo"}}, {From: "b", To: "a", Services: []string{"chat"}}}, false},
		{"to a server that holds it all", together, web.HandOffRequest{To: "a"}, "a", nil, true},
		{"chat to where it is", split, web.HandOffRequest{To: "b", Services: []string{"chat"}}, "b", nil, true},
		{"an unknown server", together, web.HandOffRequest{To: "c"}, "", nil, true},
		{"three servers: the next one", labState("c", []string{"a", "b", "c"}, map[string]string{"echo": "c", "chat": "c"}), web.HandOffRequest{}, "a", []Source{{From: "c", To: "a"}}, false},
	} {
		to, sources, err := PlanHandOff(c.st, c.req)
		if c.bad {
			if !errors.Is(err, web.ErrBadRequest) {
				t.Errorf("%s: %v, want a bad request", c.name, err)
			}
			continue
		}
		if err != nil || to != c.to || !reflect.DeepEqual(sources, c.sources) {
			t.Errorf("%s: to %q, sources %+v, %v; want to %q, %+v", c.name, to, sources, err, c.to, c.sources)
		}
	}
	if _, _, err := PlanHandOff(labState("", ab, nil), web.HandOffRequest{}); err == nil || errors.Is(err, web.ErrBadRequest) {
		t.Errorf("no server holds the VIP: %v, want a lab error", err)
	}
}
