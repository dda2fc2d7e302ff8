package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/sockshift/sockshift/demo/client"
	"github.com/sockshift/sockshift/demo/internal/wait"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// StreamResult is the full-speed verified stream through hand-offs.
type StreamResult struct {
	DurationMS int64  `json:"duration_ms"`
	Handoffs   int    `json:"handoffs"`
	Failed     int    `json:"failed"`
	Bytes      uint64 `json:"bytes"` // verified, in order
	Errors     int    `json:"errors"`
	Error      string `json:"error,omitempty"`
	WorstGapUS int64  `json:"worst_gap_us"`    // longest wait for a byte that was owed
	WorstGapAt int64  `json:"worst_gap_at_us"` // when it ended, from the stream's start
	// WorstGapHandoff is the hand-off (1-based) the worst gap overlapped,
	// 0 if none: a gap outside every hand-off is the machine, not sockshift.
	WorstGapHandoff int     `json:"worst_gap_handoff"`
	Stalls          int     `json:"stalls"`      // read gaps >= StallUS
	BeforeMBps      float64 `json:"before_mbps"` // before the first hand-off
	DuringMBps      float64 `json:"during_mbps"` // from the first hand-off's start to the last one's end
	Worst100ms      float64 `json:"worst_100ms_mbps"`
	DipPercent      float64 `json:"dip_percent"` // how much lower "during" is than "before"
	ServerTotal     Dist    `json:"server_total_us"`
	Queued          Dist    `json:"queued_bytes"` // moved per hand-off, both ways
	Retransmits     uint32  `json:"client_retransmits"`

	PerHandoff []Handoff `json:"per_handoff"`
}

// binWidth is the resolution of the throughput record.
const binWidth = 10 * time.Millisecond

// streamReader checks every byte that comes back and keeps the record.
type streamReader struct {
	c       net.Conn
	origin  time.Time
	written *atomic.Uint64

	got      uint64
	verified atomic.Uint64 // got, for progress reports
	bins     []uint64      // bytes per binWidth since origin
	worstGap time.Duration
	worstAt  time.Duration // end of the worst gap, from origin
	stalls   int
}

func (r *streamReader) run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 256<<10)
	want := make([]byte, len(buf))
	last := time.Now()
	for {
		r.c.SetReadDeadline(time.Now().Add(stallLimit))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n, err := r.c.Read(buf)
		now := time.Now()
		if n > 0 {
			if gap := now.Sub(last); gap > r.worstGap {
				r.worstGap, r.worstAt = gap, now.Sub(r.origin)
			}
			if now.Sub(last).Microseconds() >= StallUS {
				r.stalls++
			}
			last = now
			pattern(want[:n], r.got)
			if !bytes.Equal(buf[:n], want[:n]) {
				i := 0
				for buf[i] == want[i] {
					i++
				}
				return fmt.Errorf("wrong byte at offset %d", r.got+uint64(i))
			}
			r.got += uint64(n)
			r.verified.Store(r.got)
			bin := int(now.Sub(r.origin) / binWidth)
			for len(r.bins) <= bin {
				r.bins = append(r.bins, 0)
			}
			r.bins[bin] += uint64(n)
		}
		if errors.Is(err, io.EOF) {
			if w := r.written.Load(); r.got != w {
				return fmt.Errorf("the server ended the stream after %d of %d bytes", r.got, w)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read at offset %d of %d written: %w", r.got, r.written.Load(), err)
		}
		// Nothing owed: waiting for the next byte is not a gap.
		if r.got >= r.written.Load() {
			last = time.Now()
		}
	}
}

// writeStream writes the pattern at full speed until ctx is done, then
// ends its half of the connection.
func writeStream(ctx context.Context, c net.Conn, written *atomic.Uint64) error {
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 256<<10)
	var off uint64
	for ctx.Err() == nil {
		pattern(buf, off)
		c.SetWriteDeadline(time.Now().Add(stallLimit))
		if ctx.Err() != nil {
			break
		}
		n, err := c.Write(buf)
		off += uint64(n)
		written.Store(off)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("write at offset %d: %w", off, err)
		}
	}
	tc, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("%T cannot half-close", c)
	}
	if err := tc.CloseWrite(); err != nil {
		return fmt.Errorf("half-close after %d bytes: %w", off, err)
	}
	return nil
}

// stream runs one verified full-speed stream: a quarter of the time
// without hand-offs (the throughput before), then the hand-offs spread over
// the rest.
func (b *bench) stream(ctx context.Context, res *Result) error {
	d, m := b.cfg.StreamDuration, b.cfg.StreamHandoffs
	b.progressf("stream: 1 verified connection at full speed for %v, %d hand-offs", d, m)
	c, err := b.dial(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", echoAddr(), err)
	}
	defer c.Close()
	sr := &res.Stream
	origin := time.Now()
	var written atomic.Uint64
	r := &streamReader{c: c, origin: origin, written: &written}
	rerr := make(chan error, 1)
	go func() { rerr <- r.run(ctx) }()
	wctx, stopWriting := context.WithCancel(ctx)
	defer stopWriting()
	werr := make(chan error, 1)
	go func() { werr <- writeStream(wctx, c, &written) }()

	quiet := d / 4
	spacing := (d - quiet) / time.Duration(m)
	var totals []int64
	var firstStart, lastEnd time.Duration
	failed := func() bool {
		select {
		case err := <-rerr:
			rerr <- err
			return true
		default:
			return false
		}
	}
	for i := 0; i < m && ctx.Err() == nil && !failed(); i++ {
		wait.Sleep(ctx, time.Until(origin.Add(quiet+time.Duration(i)*spacing)))
		h, err := b.handOff(ctx, origin)
		if err != nil {
			stopWriting()
			c.Close()
			<-rerr
			return err
		}
		if i == 0 {
			firstStart = time.Duration(h.StartUS) * time.Microsecond
		}
		lastEnd = time.Duration(h.EndUS) * time.Microsecond
		sr.PerHandoff = append(sr.PerHandoff, h)
		if h.OK {
			totals = append(totals, h.TotalUS)
		} else {
			sr.Failed++
		}
		if k := i + 1; k == m || k%max(1, m/4) == 0 {
			b.progressf("stream: %d/%d hand-offs, %s verified so far", k, m, size(r.verified.Load()))
		}
	}
	wait.Sleep(ctx, time.Until(origin.Add(d)))
	stopWriting()
	if err := <-werr; err != nil {
		sr.Errors++
		sr.Error = err.Error()
		c.Close() // the reader would wait for bytes that never come
	}
	if err := <-rerr; err != nil {
		sr.Errors++
		sr.Error = err.Error()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rt, _, err := client.Retransmits(c); err == nil {
		sr.Retransmits = rt
	}
	sr.DurationMS = d.Milliseconds()
	sr.Handoffs = len(sr.PerHandoff)
	sr.Bytes = r.got
	sr.WorstGapUS = r.worstGap.Microseconds()
	sr.WorstGapAt = r.worstAt.Microseconds()
	sr.WorstGapHandoff = overlapping(sr.PerHandoff, r.worstAt-r.worstGap, r.worstAt)
	sr.Stalls = r.stalls
	sr.ServerTotal = summarize(totals)
	var queued []int64
	for _, h := range sr.PerHandoff {
		if h.OK {
			queued = append(queued, h.QueuedBytes)
		}
	}
	sr.Queued = summarize(queued)
	// The first 200 ms are slow start, not the steady rate.
	sr.BeforeMBps = throughput(r.bins, min(200*time.Millisecond, quiet/2), quiet)
	if sr.Handoffs > 0 {
		sr.DuringMBps = throughput(r.bins, firstStart, lastEnd)
		sr.Worst100ms = worstWindow(r.bins, firstStart, lastEnd, 100*time.Millisecond)
		if sr.BeforeMBps > 0 {
			sr.DipPercent = max(0, 100*(1-sr.DuringMBps/sr.BeforeMBps))
		}
	}
	b.progressf("stream: %s verified, %d errors, worst read gap %s, %.0f MB/s before and %.0f MB/s during hand-offs",
		size(sr.Bytes), sr.Errors, usAsMS(sr.WorstGapUS), sr.BeforeMBps, sr.DuringMBps)
	c.Close()
	return b.waitIdle(ctx)
}

// overlapping is the first hand-off (1-based) whose span meets [from, to),
// or 0.
func overlapping(hs []Handoff, from, to time.Duration) int {
	for i, h := range hs {
		start, end := time.Duration(h.StartUS)*time.Microsecond, time.Duration(h.EndUS)*time.Microsecond
		if start < to && from < end {
			return i + 1
		}
	}
	return 0
}

// throughput is the mean rate in MB/s (10^6 bytes) over [from, to).
func throughput(bins []uint64, from, to time.Duration) float64 {
	lo, hi := int(from/binWidth), int((to+binWidth-1)/binWidth)
	hi = min(hi, len(bins))
	if hi <= lo {
		return 0
	}
	var sum uint64
	for _, v := range bins[lo:hi] {
		sum += v
	}
	return float64(sum) / 1e6 / (time.Duration(hi-lo) * binWidth).Seconds()
}

// worstWindow is the lowest mean rate over any span of length w within
// [from, to).
func worstWindow(bins []uint64, from, to, w time.Duration) float64 {
	k := int(w / binWidth)
	lo, hi := int(from/binWidth), min(int((to+binWidth-1)/binWidth), len(bins))
	if hi-lo < k {
		return throughput(bins, from, to)
	}
	var sum uint64
	for _, v := range bins[lo : lo+k] {
		sum += v
	}
	worst := sum
	for i := lo + k; i < hi; i++ {
		sum += bins[i]
		sum -= bins[i-k]
		worst = min(worst, sum)
	}
	return float64(worst) / 1e6 / w.Seconds()
}

// pattern fills b with the stream's bytes from offset off: each aligned
// 8-byte word is a hash of its index, so a byte lost, doubled or moved
// shows up as a mismatch.
func pattern(b []byte, off uint64) {
	var word [8]byte
	for len(b) > 0 {
		binary.LittleEndian.PutUint64(word[:], splitmix(off>>3))
		n := copy(b, word[off&7:])
		b = b[n:]
		off += uint64(n)
	}
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
