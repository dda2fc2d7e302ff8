package capture

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Host is one lane of a sequence diagram: a host known by its MAC.
type Host struct {
	Name string // e.g. "client", "server A"
	Addr netip.Addr
	MAC  net.HardwareAddr
}

// SequenceConfig says what BuildSequence draws. Zero fields take the
// defaults noted.
type SequenceConfig struct {
	// Lanes are the hosts, left to right; the first is the client. Frames
	// are placed by their Ethernet addresses, so a segment the client sends
	// to the old server's MAC after the switch shows as such.
	Lanes []Host
	VIP   netip.Addr // ARP about it is drawn
	// Conn is the client's end of the connection to follow; zero: the
	// connection to the VIP with the most segments.
	Conn netip.AddrPort
	// Switch is the moment of the hand-off, used when the frames hold no
	// gratuitous ARP for the VIP (an announce skipped on purpose).
	Switch time.Time
	// Before and After are how many of the connection's segments are drawn
	// before and after the switch; default 5 each.
	Before, After int
}

// Sequence is a sequence diagram of one connection around a switch.
type Sequence struct {
	Lanes  []Host
	Conn   netip.AddrPort // the client's end ("" when none was found)
	Server netip.AddrPort // the service's end
	Arrows []Arrow
	// Announced is true when a gratuitous ARP for the VIP was captured.
	Announced bool
}

// Arrow kinds.
const (
	KindTCP = "tcp"
	KindARP = "arp"
	KindRST = "rst" // a TCP segment with RST: the connection is lost
)

// Arrow is one frame in the diagram.
type Arrow struct {
	At       time.Duration // since the switch (negative before it)
	From, To int           // lane indexes
	// Broadcast frames (an ARP) go to every host; To is the lane drawn.
	Broadcast bool
	Kind      string
	Label     string
	// For TCP: sequence and acknowledgement numbers relative to the first
	// segment drawn in each direction (as Wireshark shows them), and the
	// payload length.
	Seq, Ack uint32
	Len      int
}

const defaultAround = 5

// BuildSequence picks, from frames (oldest first), the last segments of a
// connection before the switch, the ARP for the VIP, and its first
// segments after, and places them between the lanes.
func BuildSequence(frames []Frame, cfg SequenceConfig) Sequence {
	if cfg.Before <= 0 {
		cfg.Before = defaultAround
	}
	if cfg.After <= 0 {
		cfg.After = defaultAround
	}
	seq := Sequence{Lanes: cfg.Lanes}
	lane := func(mac net.HardwareAddr) int {
		for i, h := range cfg.Lanes {
			if bytes.Equal(h.MAC, mac) {
				return i
			}
		}
		return -1
	}
	var pkts []Packet
	counts := map[netip.AddrPort]int{}
	switchAt := time.Time{}
	for _, f := range frames {
		p, err := Decode(f)
		if err != nil {
			continue
		}
		if p.ARP != nil {
			if p.ARP.SenderIP != cfg.VIP && p.ARP.TargetIP != cfg.VIP {
				continue
			}
			if p.ARP.Gratuitous() && switchAt.IsZero() {
				switchAt, seq.Announced = p.Time, true
			}
		} else {
			client, ok := clientEnd(p.TCP, cfg.VIP)
			if !ok {
				continue
			}
			counts[client]++
		}
		pkts = append(pkts, p)
	}
	conn := cfg.Conn
	if !conn.IsValid() {
		for c, n := range counts {
			if n > counts[conn] || (n == counts[conn] && c.Compare(conn) < 0) {
				conn = c
			}
		}
	}
	if switchAt.IsZero() {
		switchAt = cfg.Switch
	}
	if switchAt.IsZero() && len(pkts) > 0 {
		switchAt = pkts[0].Time.Add(pkts[len(pkts)-1].Time.Sub(pkts[0].Time) / 2)
	}
	if counts[conn] == 0 {
		return seq
	}
	seq.Conn = conn

	// The connection's segments either side of the switch.
	var before, after []Packet
	for _, p := range pkts {
		if p.TCP == nil {
			continue
		}
		if c, _ := clientEnd(p.TCP, cfg.VIP); c != conn {
			continue
		}
		if !seq.Server.IsValid() {
			seq.Server = p.TCP.Dst
			if p.TCP.Src != conn {
				seq.Server = p.TCP.Src
			}
		}
		if p.Time.Before(switchAt) {
			before = append(before, p)
		} else if len(after) < cfg.After {
			after = append(after, p)
		}
	}
	before = before[max(0, len(before)-cfg.Before):]
	chosen := slices.Concat(before, after)
	first, last := chosen[0].Time, chosen[len(chosen)-1].Time
	const maxARP = 4
	nARP := 0
	for _, p := range pkts {
		if p.ARP != nil && nARP < maxARP && !p.Time.Before(first) && !p.Time.After(last) {
			chosen = append(chosen, p)
			nARP++
		}
	}
	slices.SortStableFunc(chosen, func(x, y Packet) int { return x.Time.Compare(y.Time) })

	// Relative numbers: the first segment drawn in each direction is 0.
	var cBase, sBase uint32
	var cSet, sSet bool
	for _, p := range chosen {
		if p.TCP == nil {
			continue
		}
		if p.TCP.Src == conn && !cSet {
			cBase, cSet = p.TCP.Seq, true
			if !sSet && p.TCP.Flags&ACK != 0 {
				sBase, sSet = p.TCP.Ack, true
			}
		}
		if p.TCP.Dst == conn && !sSet {
			sBase, sSet = p.TCP.Seq, true
			if !cSet && p.TCP.Flags&ACK != 0 {
				cBase, cSet = p.TCP.Ack, true
			}
		}
	}
	for _, p := range chosen {
		a := Arrow{At: p.Time.Sub(switchAt), From: lane(p.Src), To: lane(p.Dst)}
		if p.ARP != nil {
			a.Kind = KindARP
			a.Broadcast = isBroadcast(p.Dst)
			a.Label = arpLabel(p.ARP)
			if a.Broadcast || a.To < 0 {
				// A server's broadcast is drawn to the client; the client's
				// to the farthest server.
				a.To = 0
				if a.From == 0 {
					a.To = len(cfg.Lanes) - 1
				}
			}
		} else {
			t := p.TCP
			a.Kind = KindTCP
			if t.Flags&RST != 0 {
				a.Kind = KindRST
			}
			if t.Src == conn {
				a.Seq, a.Ack = t.Seq-cBase, t.Ack-sBase
			} else {
				a.Seq, a.Ack = t.Seq-sBase, t.Ack-cBase
			}
			a.Len = t.Payload
			if t.Flags&ACK != 0 {
				a.Label = fmt.Sprintf("[%s] seq %d ack %d len %d", t.FlagString(), a.Seq, a.Ack, a.Len)
			} else {
				// Without ACK the acknowledgement field means nothing.
				a.Ack = 0
				a.Label = fmt.Sprintf("[%s] seq %d len %d", t.FlagString(), a.Seq, a.Len)
			}
		}
		if a.From < 0 || a.To < 0 {
			continue // a host that is not drawn
		}
		seq.Arrows = append(seq.Arrows, a)
	}
	return seq
}

// clientEnd returns the end of t that is not the VIP.
func clientEnd(t *TCP, vip netip.Addr) (netip.AddrPort, bool) {
	switch {
	case t.Dst.Addr() == vip:
		return t.Src, true
	case t.Src.Addr() == vip:
		return t.Dst, true
	}
	return netip.AddrPort{}, false
}

func isBroadcast(mac net.HardwareAddr) bool {
	return bytes.Equal(mac, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
}

func arpLabel(a *ARP) string {
	switch {
	case a.Gratuitous():
		return fmt.Sprintf("gratuitous ARP: %s is at %s", a.SenderIP, a.SenderMAC)
	case a.Op == 1:
		return fmt.Sprintf("ARP: who has %s? tell %s", a.TargetIP, a.SenderIP)
	default:
		return fmt.Sprintf("ARP: %s is at %s", a.SenderIP, a.SenderMAC)
	}
}

// Drawing: sizes in SVG user units (pixels at 100 %).
const (
	svgWidth   = 1100
	svgLeft    = 120 // the time column
	svgRight   = 60
	svgHeadTop = 16
	svgHeadH   = 96
	svgRowTop  = 150
	svgRowH    = 46
	svgFoot    = 70
)

// Colors match the console: light on dark, readable on a projector.
var laneColors = []string{"#ffffff", "#7fb7ff", "#3ddc84", "#ff9f43"}

const (
	colorBG     = "#1a1d24"
	colorFG     = "#ffffff"
	colorMuted  = "#a9b1bd"
	colorARP    = "#ffd400"
	colorRST    = "#ff5c5c"
	colorSwitch = "#ffd400"
)

// SVG draws the diagram as a standalone SVG document.
func (s Sequence) SVG() []byte {
	var b bytes.Buffer
	rows := max(len(s.Arrows), 1)
	height := svgRowTop + rows*svgRowH + svgFoot
	n := max(len(s.Lanes), 1)
	laneX := func(i int) int {
		if n == 1 {
			return svgLeft + (svgWidth-svgLeft-svgRight)/2
		}
		return svgLeft + 90 + i*(svgWidth-svgLeft-svgRight-180)/(n-1)
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Verdana, sans-serif" font-size="17">`+"\n",
		svgWidth, height, svgWidth, height)
	b.WriteString("<title>The client's packets around the switch</title>\n")
	b.WriteString("<defs>\n")
	for _, c := range append(append([]string{}, laneColors...), colorARP, colorRST) {
		fmt.Fprintf(&b, `<marker id="m%s" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>`+"\n", c[1:], c)
	}
	b.WriteString("</defs>\n")
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="%s"/>`+"\n", svgWidth, height, colorBG)

	// Lanes: a box with the host, and its lifeline.
	for i, h := range s.Lanes {
		x := laneX(i)
		col := laneColors[i%len(laneColors)]
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="230" height="%d" rx="8" fill="none" stroke="%s" stroke-width="3"/>`+"\n", x-115, svgHeadTop, svgHeadH, col)
		text(&b, x, svgHeadTop+30, "middle", col, 22, true, h.Name)
		if h.Addr.IsValid() {
			text(&b, x, svgHeadTop+58, "middle", colorFG, 17, false, h.Addr.String())
		}
		if h.MAC != nil {
			text(&b, x, svgHeadTop+82, "middle", colorMuted, 16, false, h.MAC.String())
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="6 6"/>`+"\n",
			x, svgHeadTop+svgHeadH, x, height-svgFoot+10, colorMuted)
	}
	text(&b, 16, svgRowTop-14, "start", colorMuted, 15, false, "time")

	if len(s.Arrows) == 0 {
		text(&b, svgWidth/2, svgRowTop+svgRowH/2, "middle", colorMuted, 19, false, "no packet of the connection was captured")
	}
	switchDrawn := false
	for i, a := range s.Arrows {
		y := svgRowTop + i*svgRowH + 30
		if !switchDrawn && a.At >= 0 {
			switchDrawn = true
			ly := y - 34
			fmt.Fprintf(&b, `<line x1="10" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="10 6"/>`+"\n", ly, svgWidth-10, ly, colorSwitch)
			label := "the switch"
			if !s.Announced {
				label = "the switch (no gratuitous ARP captured)"
			}
			text(&b, svgWidth-14, ly-6, "end", colorSwitch, 15, true, label)
		}
		col := laneColors[max(a.From, a.To)%len(laneColors)]
		switch a.Kind {
		case KindARP:
			col = colorARP
		case KindRST:
			col = colorRST
		}
		x1, x2 := laneX(a.From), laneX(a.To)
		dash := ""
		if a.Broadcast {
			dash = ` stroke-dasharray="12 6"`
		}
		if a.From == a.To {
			fmt.Fprintf(&b, `<path d="M%d,%d h40 v14 h-40" fill="none" stroke="%s" stroke-width="3" marker-end="url(#m%s)"%s/>`+"\n", x1, y-7, col, col[1:], dash)
		} else {
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3" marker-end="url(#m%s)"%s/>`+"\n", x1, y, x2, y, col, col[1:], dash)
		}
		mid := (x1 + x2) / 2
		text(&b, mid, y-8, "middle", col, 16, a.Kind != KindTCP, a.Label)
		text(&b, 16, y+5, "start", colorMuted, 15, false, fmt.Sprintf("%+.3f ms", float64(a.At.Microseconds())/1000))
	}
	foot := height - svgFoot + 34
	if s.Conn.IsValid() {
		text(&b, 16, foot, "start", colorMuted, 15, false,
			fmt.Sprintf("connection %s ↔ %s; time since the switch; seq and ack relative to the first segment shown each way", s.Conn, s.Server))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func text(b *bytes.Buffer, x, y int, anchor, color string, size int, bold bool, s string) {
	weight := ""
	if bold {
		weight = ` font-weight="bold"`
	}
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="%s" fill="%s" font-size="%d"%s>`, x, y, anchor, color, size, weight)
	xml.EscapeText(b, []byte(s))
	b.WriteString("</text>\n")
}
