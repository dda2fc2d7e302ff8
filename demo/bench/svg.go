package bench

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// SVG geometry: two plots stacked, sharing the left margin.
const (
	svgWidth   = 960
	svgHeight  = 760
	plotLeft   = 80
	plotRight  = svgWidth - 30
	rttTop     = 120
	rttBottom  = 400
	histTop    = 480
	histBottom = 700
)

// gapBinsMS returns the histogram's upper bin edges in milliseconds; the
// last bin holds everything above the last edge.
func gapBinsMS() []float64 {
	return []float64{0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000}
}

// WriteSVG draws two plots: the ping-pong round trip over time with each
// hand-off marked, and the distribution of client-visible gaps, hand-off
// against plain fail-over.
func (r *Result) WriteSVG(w io.Writer) error {
	bw := bufio.NewWriter(w)
	s := &svg{w: bw}
	s.printf(`<?xml version="1.0" encoding="UTF-8"?>`)
	s.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`,
		svgWidth, svgHeight, svgWidth, svgHeight)
	s.printf(`<rect width="100%%" height="100%%" fill="white"/>`)
	s.text(plotLeft, 28, "start", `font-size="18" font-weight="bold"`, "sockshift bench: client-visible gap of live hand-offs")
	s.text(plotLeft, 50, "start", "", fmt.Sprintf("%s · %s", r.Date.Format("2006-01-02 15:04 MST"), r.Machine))
	s.text(plotLeft, 68, "start", `font-family="monospace"`, r.Command)
	r.rttPlot(s)
	r.gapHistogram(s)
	s.printf(`</svg>`)
	if s.err != nil {
		return s.err
	}
	return bw.Flush()
}

type svg struct {
	w   io.Writer
	err error
}

func (s *svg) printf(format string, args ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format+"\n", args...)
	}
}

// text writes escaped text; attrs are trusted, constant attributes.
func (s *svg) text(x, y float64, anchor, attrs, body string) {
	s.printf(`<text x="%.1f" y="%.1f" text-anchor="%s" %s>%s</text>`, x, y, anchor, attrs, esc(body))
}

func esc(t string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(t))
	return b.String()
}

// logAxis maps values in [lo, hi] (both > 0) to [bottom, top] on a log
// scale.
type logAxis struct{ lo, hi, bottom, top float64 }

func (a logAxis) y(v float64) float64 {
	v = min(max(v, a.lo), a.hi)
	f := (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
	return a.bottom - f*(a.bottom-a.top)
}

// decades returns the powers of ten from 10^floor(log lo) to 10^ceil(log hi).
func decades(lo, hi float64) (float64, float64) {
	return math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
}

func (r *Result) rttPlot(s *svg) {
	rts := r.Ping.rts
	s.text(plotLeft, rttTop-18, "start", `font-size="14" font-weight="bold"`,
		fmt.Sprintf("Round trip over time, ping-pong connection (%d hand-offs, red lines)", len(r.Ping.PerHandoff)))
	var end time.Duration
	if n := len(rts); n > 0 {
		end = rts[n-1].done
	}
	for _, h := range r.Ping.PerHandoff {
		end = max(end, time.Duration(h.EndUS)*time.Microsecond)
	}
	if end <= 0 {
		end = time.Second
	}
	// Per pixel column, the worst round trip: a stall is never averaged away.
	cols := plotRight - plotLeft
	worst := make([]float64, cols)
	lo, hi := math.Inf(1), 0.0
	for _, rt := range rts {
		v := float64((rt.done - rt.sent).Microseconds()) / 1000
		v = max(v, 0.001)
		col := min(int(float64(rt.sent)/float64(end)*float64(cols)), cols-1)
		worst[col] = max(worst[col], v)
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi == 0 {
		lo, hi = 0.01, 10
	}
	lo, hi = decades(min(lo, 0.01), max(hi, 10))
	ax := logAxis{lo, hi, rttBottom, rttTop}
	x := func(t time.Duration) float64 { return plotLeft + float64(t)/float64(end)*float64(cols) }
	s.printf(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`, plotLeft, rttTop, cols, rttBottom-rttTop)
	for v := lo; v <= hi*1.001; v *= 10 {
		y := ax.y(v)
		s.printf(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, plotLeft, y, plotRight, y)
		s.text(plotLeft-6, y+4, "end", "", axisMS(v))
	}
	s.text(20, (rttTop+rttBottom)/2, "middle", fmt.Sprintf(`transform="rotate(-90 20 %d)"`, (rttTop+rttBottom)/2), "round trip (log scale)")
	for i := 0; i <= 10; i++ {
		t := end * time.Duration(i) / 10
		s.text(x(t), rttBottom+16, "middle", "", fmt.Sprintf("%.1f s", t.Seconds()))
	}
	for _, h := range r.Ping.PerHandoff {
		hx := x(time.Duration(h.StartUS) * time.Microsecond)
		color := "#d62728"
		if !h.OK {
			color = "black"
		}
		s.printf(`<line class="handoff" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-opacity="0.35"/>`, hx, rttTop, hx, rttBottom, color)
	}
	var pts strings.Builder
	for col, v := range worst {
		if v > 0 {
			fmt.Fprintf(&pts, "%d,%.1f ", plotLeft+col, ax.y(v))
		}
	}
	s.printf(`<polyline class="rtt" fill="none" stroke="#1f77b4" stroke-width="1" points="%s"/>`, strings.TrimSpace(pts.String()))
}

// histogram counts us into gapBinsMS's bins.
func histogram(us []int64) []int {
	gapBinsMS := gapBinsMS()
	counts := make([]int, len(gapBinsMS)+1)
	for _, u := range us {
		v := float64(u) / 1000
		i := 0
		for i < len(gapBinsMS) && v > gapBinsMS[i] {
			i++
		}
		counts[i]++
	}
	return counts
}

func (r *Result) gapHistogram(s *svg) {
	var ho, fo []int64
	for _, h := range r.Ping.PerHandoff {
		ho = append(ho, h.GapUS)
	}
	for _, f := range r.Baseline.PerFailover {
		fo = append(fo, f.GapUS)
	}
	hc, fc := histogram(ho), histogram(fo)
	gapBinsMS := gapBinsMS()
	s.text(plotLeft, histTop-18, "start", `font-size="14" font-weight="bold"`,
		fmt.Sprintf("Client-visible gap: %d hand-offs with sockshift vs %d plain fail-overs (close, move the VIP, reconnect)", len(ho), len(fo)))
	most := 1
	for i := range hc {
		most = max(most, hc[i], fc[i])
	}
	_, top := decades(1, float64(most)+0.5)
	// Counts on a log scale, from 0.5 so a single event still shows.
	ax := logAxis{0.5, top, histBottom, histTop}
	cols := plotRight - plotLeft
	s.printf(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`, plotLeft, histTop, cols, histBottom-histTop)
	for v := 1.0; v <= top*1.001; v *= 10 {
		y := ax.y(v)
		s.printf(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`, plotLeft, y, plotRight, y)
		s.text(plotLeft-6, y+4, "end", "", fmt.Sprint(v))
	}
	s.text(20, (histTop+histBottom)/2, "middle", fmt.Sprintf(`transform="rotate(-90 20 %d)"`, (histTop+histBottom)/2), "count (log scale)")
	bw := float64(cols) / float64(len(hc))
	for i := range hc {
		x0 := plotLeft + float64(i)*bw
		label := "≤" + axisMS(gapBinsMS[min(i, len(gapBinsMS)-1)])
		if i == len(gapBinsMS) {
			label = ">" + axisMS(gapBinsMS[i-1])
		}
		s.text(x0+bw/2, histBottom+16, "middle", `font-size="11"`, label)
		for k, c := range []int{hc[i], fc[i]} {
			if c == 0 {
				continue
			}
			class, color := "handoff-bar", "#1f77b4"
			if k == 1 {
				class, color = "failover-bar", "#ff7f0e"
			}
			bx := x0 + 4 + float64(k)*(bw-8)/2
			y := ax.y(float64(c))
			s.printf(`<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, class, bx, y, (bw-8)/2, histBottom-y, color)
			s.text(bx+(bw-8)/4, y-3, "middle", `font-size="10"`, fmt.Sprint(c))
		}
	}
	s.text((plotLeft+plotRight)/2, histBottom+34, "middle", "", "gap (longest time without a completed round trip)")
	s.printf(`<rect x="%d" y="%d" width="12" height="12" fill="#1f77b4"/>`, plotRight-300, histTop+8)
	s.text(plotRight-283, histTop+18, "start", "", "hand-off with sockshift")
	s.printf(`<rect x="%d" y="%d" width="12" height="12" fill="#ff7f0e"/>`, plotRight-300, histTop+26)
	s.text(plotRight-283, histTop+36, "start", "", "plain fail-over (baseline)")
}

// axisMS labels a value in milliseconds.
func axisMS(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%g s", v/1000)
	case v >= 1:
		return fmt.Sprintf("%g ms", v)
	default:
		return fmt.Sprintf("%g µs", v*1000)
	}
}
