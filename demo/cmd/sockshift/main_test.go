package main

import (
	"strings"
	"testing"

	"github.com/sockshift/sockshift/web"
)

// `sockshift handoff` prints a person one line: what moved, or why not.
func TestReportLine(t *testing.T) {
	ok := web.Report{OK: true, From: "a", To: "b", Connections: 5, Services: []string{"echo", "chat"},
		Addresses: []string{"192.0.2.100", "192.0.2.101"}, Stayed: []web.Stayed{{}}, TotalUS: 1600, GapUS: 250, Caught: 1}
	failed := web.Report{From: "a", To: "b", RolledBack: true, Remaining: []web.Connection{{}, {}},
		Error: "handoff failed at announce (rolled back: connections stay on the source): at announce: stopped by the operator"}
	for _, c := range []struct {
		r    web.Report
		want []string
	}{
		{ok, []string{"A → B: 5 connections moved (echo, chat on 192.0.2.100, 192.0.2.101), 1 stayed on A", "freeze to resume 1.60 ms", "client-visible gap 0.25 ms", "1 client frames caught", "--json"}},
		{failed, []string{"hand-off A → B failed: handoff failed at announce", "nothing moved, 2 connections still on A"}},
	} {
		got := reportLine(c.r)
		if strings.Contains(got, "\n") {
			t.Errorf("more than one line: %q", got)
		}
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%q lacks %q", got, w)
			}
		}
	}
}
