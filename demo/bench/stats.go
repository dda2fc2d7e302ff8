package bench

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Dist summarizes measurements in microseconds.
type Dist struct {
	N   int   `json:"n"`
	P50 int64 `json:"p50"`
	P90 int64 `json:"p90"`
	P99 int64 `json:"p99"`
	Max int64 `json:"max"`
}

// summarize returns the distribution of us (which it does not change).
func summarize(us []int64) Dist {
	if len(us) == 0 {
		return Dist{}
	}
	s := slices.Clone(us)
	slices.Sort(s)
	return Dist{N: len(s), P50: percentile(s, 50), P90: percentile(s, 90), P99: percentile(s, 99), Max: s[len(s)-1]}
}

// percentile returns the nearest-rank p-th percentile of sorted: the
// smallest value with at least p percent of the values at or below it.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// roundTrip is one ping as the client saw it, in time since the run's
// origin.
type roundTrip struct {
	sent, done time.Duration
}

// window is when a hand-off ran, as the client saw it: from sending the
// request to getting the answer. The freeze lies inside it.
type window struct {
	start, end time.Duration
}

// attributeGaps charges each window the longest time without a completed
// round trip that overlaps it: for round trip j, the stretch from the
// previous completion (or its own send, for the first) to its completion.
// The pings run back to back, so that stretch is one round trip plus the
// client's own microseconds. rts must be in order (one ping at a time). A
// window no round trip overlaps gets 0.
func attributeGaps(rts []roundTrip, ws []window) []time.Duration {
	gaps := make([]time.Duration, len(ws))
	for i, w := range ws {
		// The first round trip that completes after the window starts.
		j := sort.Search(len(rts), func(j int) bool { return rts[j].done > w.start })
		for ; j < len(rts); j++ {
			from := rts[j].sent
			if j > 0 {
				from = rts[j-1].done
			}
			if from >= w.end {
				break
			}
			gaps[i] = max(gaps[i], rts[j].done-from)
		}
	}
	return gaps
}

// outside returns the round-trip times of the pings that overlap no
// window: the lab's normal round trip.
func outside(rts []roundTrip, ws []window) []int64 {
	var out []int64
	k := 0
	for _, rt := range rts {
		for k < len(ws) && ws[k].end < rt.sent {
			k++
		}
		if k < len(ws) && ws[k].start <= rt.done {
			continue
		}
		out = append(out, (rt.done - rt.sent).Microseconds())
	}
	return out
}

func micros(ds []time.Duration) []int64 {
	out := make([]int64, len(ds))
	for i, d := range ds {
		out[i] = d.Microseconds()
	}
	return out
}
