package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/sockshift/sockshift/demo/node"
)

// WriteTable prints the result as aligned text for people.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "sockshift bench, %s, on %s\n", r.Date.Format("2006-01-02 15:04 MST"), r.Machine)
	if r.Command != "" {
		fmt.Fprintf(w, "command: %s\n", r.Command)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	dist := func(d Dist) string {
		if d.N == 0 {
			return "-"
		}
		return fmt.Sprintf("p50 %s  p90 %s  max %s", usAsMS(d.P50), usAsMS(d.P90), usAsMS(d.Max))
	}

	p := r.Ping
	fmt.Fprintf(w, "\nPing-pong through hand-offs (1 connection, %d-byte messages back to back)\n", pingSize)
	row("  hand-offs", fmt.Sprintf("%d (%d failed)", p.Handoffs, p.Failed))
	row("  client-visible gap", dist(p.GapUS))
	row(fmt.Sprintf("  stalls >= %s", usAsMS(StallUS)), fmt.Sprintf("%d of %d", p.Stalls, p.Handoffs))
	row("  server freeze→resume", fmt.Sprintf("p50 %s  max %s", usAsMS(p.ServerTotalUS.P50), usAsMS(p.ServerTotalUS.Max)))
	row("  normal round trip", fmt.Sprintf("p50 %s  (%d pings)", usAsMS(p.NormalRTTUS.P50), p.Pings))
	row("  client retransmissions", fmt.Sprint(p.ClientRetransmits))
	if p.Error != "" {
		row("  error", p.Error)
	}
	tw.Flush()

	s := r.Stream
	fmt.Fprintf(w, "\nFull-speed verified stream (1 connection, %.1f s, %d hand-offs)\n", float64(s.DurationMS)/1000, s.Handoffs)
	row("  bytes verified in order", fmt.Sprintf("%s, %d errors, %d hand-offs failed", size(s.Bytes), s.Errors, s.Failed))
	where := "outside every hand-off"
	if s.WorstGapHandoff > 0 {
		where = fmt.Sprintf("during hand-off %d", s.WorstGapHandoff)
	}
	row("  worst read gap", fmt.Sprintf("%s %s  (%d stalls >= %s)", usAsMS(s.WorstGapUS), where, s.Stalls, usAsMS(StallUS)))
	row("  throughput", fmt.Sprintf("%.0f MB/s before, %.0f MB/s during hand-offs (dip %.0f%%), worst 100 ms %.0f MB/s",
		s.BeforeMBps, s.DuringMBps, s.DipPercent, s.Worst100ms))
	row("  server freeze→resume", fmt.Sprintf("p50 %s  max %s  (queued bytes moved: p50 %s, max %s)", usAsMS(s.ServerTotal.P50), usAsMS(s.ServerTotal.Max),
		size(uint64(s.Queued.P50)), size(uint64(s.Queued.Max))))
	row("  client retransmissions", fmt.Sprint(s.Retransmits))
	if s.Error != "" {
		row("  error", s.Error)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nBulk: N idle connections, each handed off twice (freeze→resume, server side)\n")
	row("  conns", "moved", "freeze→resume", "alive after", "phases of the first hand-off")
	for _, b := range r.Bulk {
		if b.Skipped != "" {
			row(fmt.Sprintf("  %d", b.Conns), "skipped: "+b.Skipped)
			continue
		}
		var moved, totals []string
		for _, h := range b.Handoffs {
			if !h.OK {
				moved, totals = append(moved, "failed"), append(totals, "-")
				continue
			}
			moved, totals = append(moved, fmt.Sprint(h.Connections)), append(totals, usAsMS(h.TotalUS))
		}
		var phases string
		if len(b.Handoffs) > 0 {
			phases = phaseList(b.Handoffs[0].Phases)
		}
		if b.Error != "" {
			phases = "error: " + b.Error
		}
		row(fmt.Sprintf("  %d", b.Conns), strings.Join(moved, ", "), strings.Join(totals, ", "), fmt.Sprintf("%d/%d", b.Alive, b.Conns), phases)
	}
	tw.Flush()

	bl := r.Baseline
	fmt.Fprintf(w, "\nBaseline without sockshift: close every connection, move the VIP, the client reconnects (%d fail-overs)\n", bl.Failovers)
	row("  client-visible gap", dist(bl.GapUS))
	row("  from the close to talking", dist(bl.OutageUS))
	row("  how the client learned", causes(bl.Causes))
	row("  lost", fmt.Sprintf("%d connections (TCP state and server state), %d bytes in flight, %d connects needed", bl.ConnectionsLost, bl.BytesLost, bl.Dials))
	if bl.Error != "" {
		row("  error", bl.Error)
	}
	tw.Flush()

	if p.GapUS.N > 0 && bl.GapUS.N > 0 && p.GapUS.P50 > 0 {
		fmt.Fprintf(w, "\nHand-off gap vs plain fail-over: p50 %s vs %s (%.0fx shorter), max %s vs %s, and no connection lost\n",
			usAsMS(p.GapUS.P50), usAsMS(bl.GapUS.P50), float64(bl.GapUS.P50)/float64(p.GapUS.P50), usAsMS(p.GapUS.Max), usAsMS(bl.GapUS.Max))
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\nPROBLEMS (%d):\n", len(r.Problems))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
	fmt.Fprintf(w, "\n(%.1f s, lab %q)\n", float64(r.ElapsedMS)/1000, r.Prefix)
}

func phaseList(ps []node.Phase) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s %.2f", p.Name, float64(p.US)/1000)
	}
	return strings.Join(parts, ", ")
}

func size(b uint64) string {
	switch {
	case b >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(b)/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(b)/1e6)
	case b >= 1e4:
		return fmt.Sprintf("%.0f KB", float64(b)/1e3)
	default:
		return fmt.Sprintf("%d bytes", b)
	}
}

func causes(m map[string]int) string {
	names := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%d %s", m[n], n)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
