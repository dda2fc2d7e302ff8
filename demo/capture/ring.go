package capture

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Frame is one captured Ethernet frame.
type Frame struct {
	Time time.Time
	Data []byte // the first Snaplen bytes of the frame
	Len  int    // the frame's length on the wire
}

// RingConfig sizes a Ring. Zero fields take the defaults noted.
type RingConfig struct {
	// MaxFrames is how many frames the ring keeps; default 32768 (about a
	// minute of the demo's clients).
	MaxFrames int
}

// Ring keeps the most recent frames. It is safe for concurrent use.
type Ring struct {
	mu     sync.Mutex
	frames []Frame // circular, next is where the next frame goes
	next   int
	full   bool
}

const defaultMaxFrames = 32768

// NewRing returns an empty ring; nil applies the defaults.
func NewRing(cfg *RingConfig) *Ring {
	n := defaultMaxFrames
	if cfg != nil && cfg.MaxFrames > 0 {
		n = cfg.MaxFrames
	}
	return &Ring{frames: make([]Frame, n)}
}

// Add stores f, replacing the oldest frame when the ring is full. The ring
// keeps f.Data: the caller must not change it afterwards.
func (r *Ring) Add(f Frame) {
	r.mu.Lock()
	r.frames[r.next] = f
	r.next++
	if r.next == len(r.frames) {
		r.next, r.full = 0, true
	}
	r.mu.Unlock()
}

// Len returns how many frames the ring holds.
func (r *Ring) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.full {
		return len(r.frames)
	}
	return r.next
}

// Window returns the frames captured from from to to (both included),
// oldest first. Frames are kept in capture order; the slices of Data are
// shared, and must not be changed.
func (r *Ring) Window(from, to time.Time) []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Frame
	add := func(fs []Frame) {
		for _, f := range fs {
			if !f.Time.Before(from) && !f.Time.After(to) {
				out = append(out, f)
			}
		}
	}
	if r.full {
		add(r.frames[r.next:])
	}
	add(r.frames[:r.next])
	return out
}

// Ends returns the first n and the last n frames captured from from to to
// (both included), oldest first: what a long window starts and ends with,
// copied before the ring overwrites it.
func (r *Ring) Ends(from, to time.Time, n int) []Frame {
	w := r.Window(from, to)
	if len(w) <= 2*n {
		return w
	}
	return append(w[:n:n], w[len(w)-n:]...)
}

// Merge merges frame lists, each oldest first and cut from the same ring,
// into one, oldest first, each frame once.
func Merge(lists ...[]Frame) []Frame {
	var all []Frame
	for _, l := range lists {
		all = append(all, l...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	out := all[:0:0]
next:
	for _, f := range all {
		// Copies of one frame share its time: look back over that time.
		for i := len(out) - 1; i >= 0 && out[i].Time.Equal(f.Time); i-- {
			if sameFrame(out[i], f) {
				continue next
			}
		}
		out = append(out, f)
	}
	return out
}

// sameFrame: frames from one ring are the same if they share time, length
// and data (the ring hands out its own slices).
func sameFrame(a, b Frame) bool {
	return a.Time.Equal(b.Time) && a.Len == b.Len && len(a.Data) == len(b.Data) &&
		(len(a.Data) == 0 || &a.Data[0] == &b.Data[0] || string(a.Data) == string(b.Data))
}

// Cut says how much of the frames around a hand-off Around keeps.
type Cut struct {
	// Before and After widen the window: from Before ahead of the
	// hand-off's start to After past its end.
	Before, After time.Duration
	// Max bounds the frames kept (0: no bound). Beyond it, the frames
	// nearest the hand-off are kept: a busy connection cannot push the
	// switch itself out of the capture, and a long step-mode pause keeps
	// what happened either side of it.
	Max int
	// Keep, if set, marks frames kept even beyond Max (the gratuitous ARP,
	// a reset, the connection a diagram follows).
	Keep func(Frame) bool
	// Marks are more moments to keep frames around beyond Max (each phase
	// of a step-mode hand-off): with marks, the frames nearest any mark,
	// the start or the end are kept, so a long pause keeps what happened
	// at each step rather than only at its two ends.
	Marks []time.Time
}

// Around cuts the window of a hand-off from start to end out of frames,
// which must be oldest first, as cut says.
func Around(frames []Frame, start, end time.Time, cut Cut) []Frame {
	from, to := start.Add(-cut.Before), end.Add(cut.After)
	lo := sort.Search(len(frames), func(i int) bool { return !frames[i].Time.Before(from) })
	hi := sort.Search(len(frames), func(i int) bool { return frames[i].Time.After(to) })
	if hi < lo {
		hi = lo
	}
	out := frames[lo:hi]
	if cut.Max <= 0 || len(out) <= cut.Max {
		return out
	}
	distance := func(t time.Time) time.Duration {
		switch {
		case t.Before(start):
			return start.Sub(t)
		case t.After(end):
			return t.Sub(end)
		case len(cut.Marks) == 0:
			return 0
		}
		d := min(t.Sub(start), end.Sub(t))
		for _, m := range cut.Marks {
			d = min(d, t.Sub(m).Abs())
		}
		return d
	}
	var keep, rest []int
	for i, f := range out {
		if cut.Keep != nil && cut.Keep(f) {
			keep = append(keep, i)
		} else {
			rest = append(rest, i)
		}
	}
	sort.SliceStable(rest, func(i, j int) bool { return distance(out[rest[i]].Time) < distance(out[rest[j]].Time) })
	idx := append(keep, rest[:max(0, min(len(rest), cut.Max-len(keep)))]...)
	sort.Ints(idx)
	kept := make([]Frame, len(idx))
	for i, k := range idx {
		kept[i] = out[k]
	}
	return kept
}

// Snaplen is how much of each frame the sniffer keeps: every header of an
// ARP or TCP/IPv4 frame with options, and the start of its payload.
const Snaplen = 256

// WritePCAP writes frames as a pcap file (Ethernet link type, microsecond
// timestamps), the format Wireshark and tcpdump read.
func WritePCAP(w io.Writer, frames []Frame) error {
	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(Snaplen, layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("capture: write pcap header: %w", err)
	}
	for i, f := range frames {
		data := f.Data
		if len(data) > Snaplen {
			data = data[:Snaplen]
		}
		ci := gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(data), Length: max(f.Len, len(data))}
		if err := pw.WritePacket(ci, data); err != nil {
			return fmt.Errorf("capture: write pcap frame %d: %w", i, err)
		}
	}
	return nil
}
