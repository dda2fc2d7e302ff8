package appliance

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sockshift/sockshift/demo/capture"
	"github.com/sockshift/sockshift/demo/internal/neigh"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/web"
)

// The capture window around a hand-off: from a little before the first
// phase to a little after the last, so the last segments to the old
// server and the first to the new one are in it.
const (
	captureBefore = 200 * time.Millisecond
	captureAfter  = 300 * time.Millisecond
	// captureMax bounds one capture; a long step-mode hand-off keeps its
	// two ends.
	captureMax = 20000
	// sequenceAround is how many of the followed connection's segments the
	// diagram shows either side of the switch.
	sequenceAround = 6
)

// recording is what the console serves about the latest hand-off.
type recording struct {
	pcap []byte
	svg  []byte
}

// startCapture opens the packet socket in the client's namespace; the
// demo runs on without it (and says so) if it cannot.
func (a *Appliance) startCapture() {
	cl := a.cluster.Lab.Client
	sn, err := capture.Sniff(cl.Namespace, cl.Interface, a.ring, &capture.SniffConfig{
		Keep: func(p capture.Packet) bool {
			if p.ARP != nil {
				return true
			}
			return slices.Contains(serviceAddrs, p.TCP.Src.Addr()) || slices.Contains(serviceAddrs, p.TCP.Dst.Addr())
		},
		Seen: func(p capture.Packet) {
			if p.TCP == nil {
				return
			}
			if slices.Contains(serviceAddrs, p.TCP.Dst.Addr()) {
				a.up.Add(uint64(p.TCP.Payload))
			} else {
				a.down.Add(uint64(p.TCP.Payload))
			}
		},
	})
	if err != nil {
		a.cfg.Log.Printf("no capture of the client's packets: %v", err)
		return
	}
	a.sniffer = sn
}

// record cuts the window of a hand-off from the ring, keeps it as pcap and
// as a sequence diagram, and sums it up for the report. The window runs
// from start to end (past the repair of a broken hand-off); done is when
// the hand-off itself ended, the switch if no gratuitous ARP was sent.
func (a *Appliance) record(start, end, done time.Time) *web.Capture {
	follow := a.probe.connAt(start)
	window, marks := a.frames(start.Add(-captureBefore), end.Add(captureAfter))
	most := captureMax
	if len(marks) > 0 {
		most = stepCaptureMax
	}
	frames := capture.Around(window, start, end, capture.Cut{
		Before: captureBefore, After: captureAfter, Max: most, Marks: marks,
		// What the diagram shows and what tells the story stays in.
		Keep: func(f capture.Frame) bool {
			p, err := capture.Decode(f)
			switch {
			case err != nil:
				return false
			case p.ARP != nil:
				return true
			case p.TCP.Flags&capture.RST != 0:
				return true
			}
			return follow.IsValid() && (p.TCP.Src == follow || p.TCP.Dst == follow)
		},
	})
	var pcap bytes.Buffer
	if err := capture.WritePCAP(&pcap, frames); err != nil {
		a.cfg.Log.Printf("capture: %v", err)
		return nil
	}
	sum := &web.Capture{Frames: len(frames)}
	for _, f := range frames {
		p, err := capture.Decode(f)
		switch {
		case err != nil:
		case p.ARP != nil:
			sum.ARP++
			if p.ARP.Gratuitous() && slices.Contains(serviceAddrs, p.ARP.SenderIP) {
				sum.Announced = true
			}
		case p.TCP != nil:
			sum.TCP++
			if p.TCP.Flags&capture.RST != 0 {
				sum.Resets++
			}
		}
	}
	l := a.cluster.Lab
	cfg := capture.SequenceConfig{
		Lanes: []capture.Host{{Name: "client", Addr: l.Client.Addr.Addr(), MAC: l.Client.MAC}},
		VIP:   lab.VIP, Conn: follow, Switch: done, Before: sequenceAround, After: sequenceAround,
	}
	for _, h := range l.Servers {
		cfg.Lanes = append(cfg.Lanes, capture.Host{Name: serverName(h.Role), Addr: h.Addr.Addr(), MAC: h.MAC})
	}
	seq := capture.BuildSequence(frames, cfg)
	if len(seq.Arrows) == 0 && cfg.Conn.IsValid() {
		cfg.Conn = netip.AddrPort{} // the probe had reconnected: follow the busiest
		seq = capture.BuildSequence(frames, cfg)
	}
	a.recMu.Lock()
	a.recID++
	sum.ID = a.recID
	a.latest = &recording{pcap: pcap.Bytes(), svg: seq.SVG()}
	a.recMu.Unlock()
	return sum
}

// HandOffFile implements web.Recorder.
func (a *Appliance) HandOffFile(ctx context.Context, name string) ([]byte, string, error) {
	a.recMu.Lock()
	rec := a.latest
	a.recMu.Unlock()
	if rec == nil {
		return nil, "", fmt.Errorf("%s: %w", name, web.ErrNoFile)
	}
	switch name {
	case "latest.pcap":
		return rec.pcap, "application/vnd.tcpdump.pcap", nil
	case "latest.svg":
		return rec.svg, "image/svg+xml", nil
	}
	return nil, "", fmt.Errorf("%s: %w", name, web.ErrNoFile)
}

// clientARP returns the client's neighbour entry for the VIP as `ip neigh`
// prints it, and the MAC in it; read through netlink, since every state
// request asks.
func (a *Appliance) clientARP(ctx context.Context) (line, mac string) {
	es, err := neigh.Lookup(a.cluster.Lab.Client.Namespace, lab.VIP, "")
	if err != nil {
		return "", ""
	}
	if len(es) == 0 {
		return "(no entry: the client has not resolved " + lab.VIP.String() + ")", ""
	}
	var lines []string
	for _, e := range es {
		lines = append(lines, e.String())
		if mac == "" && len(e.MAC) > 0 {
			mac = e.MAC.String()
		}
	}
	return strings.Join(lines, "\n"), mac
}
