package bench

import (
	"slices"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	one := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		data []int64
		p    float64
		want int64
	}{
		{one, 50, 5}, {one, 90, 9}, {one, 91, 10}, {one, 99, 10}, {one, 100, 10}, {one, 0, 1}, {one, 10, 1}, {one, 11, 2},
		{[]int64{7}, 50, 7}, {[]int64{7}, 99, 7}, {nil, 50, 0},
		{[]int64{1, 2, 3, 4}, 50, 2},
	} {
		if got := percentile(c.data, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %d, want %d", c.data, c.p, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	in := []int64{900, 100, 500, 300, 700, 200, 800, 400, 1000, 600}
	orig := slices.Clone(in)
	d := summarize(in)
	want := Dist{N: 10, P50: 500, P90: 900, P99: 1000, Max: 1000}
	if d != want {
		t.Errorf("summarize = %+v, want %+v", d, want)
	}
	if !slices.Equal(in, orig) {
		t.Errorf("summarize reordered its input: %v", in)
	}
	if (summarize(nil) != Dist{}) {
		t.Errorf("summarize(nil) = %+v, want zero", summarize(nil))
	}
}

// pings makes back-to-back round trips of rtt from start until end, with
// one round trip of stall sent at stallAt (if stall > 0).
func pings(start, end, rtt, stallAt, stall time.Duration) []roundTrip {
	var rts []roundTrip
	t := start
	for t < end {
		d := rtt
		if stall > 0 && t >= stallAt && t < stallAt+rtt {
			d = stall
		}
		rts = append(rts, roundTrip{t, t + d})
		t += d + time.Microsecond // the client's own time between pings
	}
	return rts
}

func TestAttributeGaps(t *testing.T) {
	us := time.Microsecond
	ms := time.Millisecond
	// 100 µs round trips for a second; one 5 ms stall sent at 300 ms.
	rts := pings(0, time.Second, 100*us, 300*ms, 5*ms)
	ws := []window{
		{299 * ms, 301 * ms},               // the stall starts inside
		{304 * ms, 306 * ms},               // the stall ends inside: it overlaps too
		{500 * ms, 502 * ms},               // quiet
		{2 * time.Second, 3 * time.Second}, // after the last ping: nothing overlaps
	}
	gaps := attributeGaps(rts, ws)
	if len(gaps) != len(ws) {
		t.Fatalf("%d gaps for %d windows", len(gaps), len(ws))
	}
	for i, want := range []time.Duration{5*ms + us, 5*ms + us} {
		if gaps[i] != want {
			t.Errorf("window %d: gap %v, want %v (the stall)", i, gaps[i], want)
		}
	}
	if gaps[2] < 100*us || gaps[2] > 102*us {
		t.Errorf("quiet window: gap %v, want one round trip (100 µs + the client's 1 µs)", gaps[2])
	}
	if gaps[3] != 0 {
		t.Errorf("window after the last ping: gap %v, want 0", gaps[3])
	}
}

func TestAttributeGapsFirstPing(t *testing.T) {
	// The first round trip counts from its own send.
	rts := []roundTrip{{10 * time.Millisecond, 12 * time.Millisecond}, {12 * time.Millisecond, 13 * time.Millisecond}}
	gaps := attributeGaps(rts, []window{{0, 11 * time.Millisecond}})
	if gaps[0] != 2*time.Millisecond {
		t.Errorf("gap %v, want 2ms", gaps[0])
	}
}

func TestOutsideSkipsHandoffWindows(t *testing.T) {
	rts := []roundTrip{{0, 10}, {10, 20}, {20, 500}, {500, 510}, {510, 520}}
	ws := []window{{100, 200}}
	got := outside(rts, ws)
	// Nanosecond round trips are 0 µs; count them instead of their value.
	if len(got) != 4 {
		t.Errorf("outside kept %d round trips, want the 4 that miss the window", len(got))
	}
}

func TestThroughput(t *testing.T) {
	bins := make([]uint64, 100) // one second
	for i := range bins {
		bins[i] = 10_000_000 // 10 MB per 10 ms: 1000 MB/s
	}
	for i := 50; i < 60; i++ {
		bins[i] = 0 // a 100 ms hole
	}
	if got := throughput(bins, 0, 500*time.Millisecond); got != 1000 {
		t.Errorf("throughput before the hole = %v MB/s, want 1000", got)
	}
	if got := throughput(bins, 0, time.Second); got != 900 {
		t.Errorf("throughput over the second = %v MB/s, want 900", got)
	}
	if got := worstWindow(bins, 0, time.Second, 100*time.Millisecond); got != 0 {
		t.Errorf("worst 100 ms = %v MB/s, want 0 (the hole)", got)
	}
	if got := worstWindow(bins, 0, 400*time.Millisecond, 100*time.Millisecond); got != 1000 {
		t.Errorf("worst 100 ms before the hole = %v MB/s, want 1000", got)
	}
}

func TestPatternIsPositional(t *testing.T) {
	whole := make([]byte, 1000)
	pattern(whole, 0)
	// Written piecewise from odd offsets, it is the same stream.
	pieces := make([]byte, 1000)
	for off := 0; off < len(pieces); off += 37 {
		end := min(off+37, len(pieces))
		pattern(pieces[off:end], uint64(off))
	}
	if !slices.Equal(whole, pieces) {
		t.Fatal("the pattern depends on how it is cut")
	}
	// One byte dropped: the rest no longer matches.
	shifted := make([]byte, 999)
	pattern(shifted, 1)
	if slices.Equal(whole[:999], shifted) {
		t.Fatal("a shifted stream matches")
	}
	same := 0
	for i := range shifted {
		if shifted[i] == whole[i] {
			same++
		}
	}
	if same > 50 {
		t.Errorf("%d of 999 bytes match after a shift of one; the pattern is too regular", same)
	}
}

func TestHistogramBins(t *testing.T) {
	c := histogram([]int64{50, 100, 101, 800, 1000, 208_000, 9_000_000})
	want := map[int]int{0: 2, 1: 1, 3: 2, 11: 1, 15: 1} // 208 ms falls in (200, 500]
	for i, n := range c {
		if n != want[i] {
			t.Errorf("bin %d: %d, want %d (all: %v)", i, n, want[i], c)
		}
	}
}

// TestCollectMore: a client broken twice by one fail-over (it reconnected
// to the old server before the VIP left) counts both breaks to that
// fail-over; a break after the client settled is left for the next.
func TestCollectMore(t *testing.T) {
	ch := make(chan episode, 1)
	first := episode{lastOK: 10 * time.Millisecond, broke: 11 * time.Millisecond, recovered: 12 * time.Millisecond, conns: 1, dials: 1, lost: 64}
	ch <- episode{lastOK: 13 * time.Millisecond, broke: 14 * time.Millisecond, recovered: 215 * time.Millisecond, conns: 1, dials: 2, lost: 64}
	late := make(chan struct{})
	go func() {
		time.Sleep(settleTime + 200*time.Millisecond)
		ch <- episode{recovered: time.Second, conns: 1}
		close(late)
	}()
	if err := collectMore(t.Context(), ch, &first); err != nil {
		t.Fatal(err)
	}
	want := episode{lastOK: 10 * time.Millisecond, broke: 11 * time.Millisecond, recovered: 215 * time.Millisecond, conns: 2, dials: 3, lost: 128}
	if first != want {
		t.Errorf("merged %+v, want %+v", first, want)
	}
	<-late
	if next := <-ch; next.recovered != time.Second {
		t.Errorf("the later break went missing: %+v", next)
	}
}
