package bench

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// sample is a small made-up result: three hand-offs (one failed), two
// plain fail-overs.
func sample() *Result {
	r := &Result{
		Date:    time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		Machine: Machine{Kernel: "Linux 6.18 x86_64", CPUs: 2, Go: "go1.26"},
		Command: `sockshift bench --svg "a<b>&c.svg"`,
		Prefix:  "ssb",
	}
	r.Ping.rts = pings(0, 400*time.Millisecond, 60*time.Microsecond, 200*time.Millisecond, 800*time.Microsecond)
	for i, start := range []int64{100_000, 200_000, 300_000} {
		r.Ping.PerHandoff = append(r.Ping.PerHandoff, Handoff{From: "a", To: "b", OK: i != 2, TotalUS: 450, StartUS: start, EndUS: start + 2000, GapUS: []int64{700, 800, 150_000}[i]})
	}
	r.Ping.Handoffs, r.Ping.Failed, r.Ping.Stalls = 3, 1, 1
	r.Ping.GapUS = summarize([]int64{700, 800, 150_000})
	r.Baseline.PerFailover = []Failover{{GapUS: 1_015_000}, {GapUS: 1_016_000}}
	r.Baseline.Failovers = 2
	r.Baseline.GapUS = summarize([]int64{1_015_000, 1_016_000})
	r.Bulk = []BulkResult{
		{Conns: 100, Alive: 100, Handoffs: []Handoff{{OK: true, Connections: 100, TotalUS: 6300}}},
		{Conns: 50000, Skipped: "too many"},
	}
	r.Problems = r.problems()
	return r
}

func TestSVGIsWellFormedWithTheMarks(t *testing.T) {
	var buf bytes.Buffer
	if err := sample().WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&buf)
	classes := map[string]int{}
	var text strings.Builder
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			for _, a := range tok.Attr {
				if a.Name.Local == "class" {
					classes[tok.Name.Local+"."+a.Value]++
				}
			}
		case xml.CharData:
			text.Write(tok)
		}
	}
	if root != "svg" {
		t.Errorf("root element %q, want svg", root)
	}
	if n := classes["line.handoff"]; n != 3 {
		t.Errorf("%d hand-off marks, want 3", n)
	}
	if classes["polyline.rtt"] != 1 {
		t.Errorf("no round-trip curve (classes: %v)", classes)
	}
	// 700 and 800 µs in one bin, 150 ms in another; both fail-overs in one.
	if classes["rect.handoff-bar"] != 2 || classes["rect.failover-bar"] != 1 {
		t.Errorf("histogram bars: %v, want 2 hand-off bars and 1 fail-over bar", classes)
	}
	for _, want := range []string{`sockshift bench --svg "a<b>&c.svg"`, "2026-01-02", "Linux 6.18 x86_64", "2 CPUs"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the SVG's text lacks %q", want)
		}
	}
}

func TestTableShowsTheFigures(t *testing.T) {
	var buf bytes.Buffer
	sample().WriteTable(&buf)
	out := buf.String()
	for _, want := range []string{
		"p50 0.80 ms", "max 150 ms", // ping gap
		"1 of 3",       // stalls
		"3 (1 failed)", // hand-offs
		"p50 1015 ms",  // baseline
		"100/100",      // bulk alive
		"50000", "skipped: too many",
		"PROBLEMS", "1 of 3 hand-offs failed",
		`command: sockshift bench --svg "a<b>&c.svg"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestProblems(t *testing.T) {
	r := sample()
	if r.Err() == nil {
		t.Fatal("a failed hand-off is no problem?")
	}
	r.Ping.Failed = 0
	r.Bulk[0].Alive = 99
	p := r.problems()
	if len(p) != 1 || !strings.Contains(p[0], "only 99 of 100") {
		t.Errorf("problems = %q, want one about the dead bulk connection", p)
	}
	r.Bulk[0].Alive = 100
	if p := r.problems(); len(p) != 0 {
		t.Errorf("problems of a clean run: %q", p)
	}
}
