package capture

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var (
	macClient = net.HardwareAddr{2, 0, 0, 0, 0, 0x10}
	macA      = net.HardwareAddr{2, 0, 0, 0, 0, 0x01}
	macB      = net.HardwareAddr{2, 0, 0, 0, 0, 0x02}
	bcast     = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	vip       = netip.MustParseAddr("192.0.2.100")
	client    = netip.MustParseAddrPort("192.0.2.10:40000")
	service   = netip.AddrPortFrom(vip, 7)
)

// tcpFrame builds a frame with gopacket, so Decode is checked against an
// independent encoder.
func tcpFrame(t testing.TB, src, dst net.HardwareAddr, from, to netip.AddrPort, seq, ack uint32, flags string, payload int) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: from.Addr().AsSlice(), DstIP: to.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(from.Port()), DstPort: layers.TCPPort(to.Port()),
		Seq: seq, Ack: ack, Window: 502, ACK: strings.Contains(flags, "."), PSH: strings.Contains(flags, "P"),
		RST: strings.Contains(flags, "R"), SYN: strings.Contains(flags, "S"), FIN: strings.Contains(flags, "F")}
	// Options, so the data offset is not the minimum.
	tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindNop}, {OptionType: layers.TCPOptionKindNop},
		{OptionType: layers.TCPOptionKindTimestamps, OptionLength: 10, OptionData: make([]byte, 8)}}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(make([]byte, payload)))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func arpFrame(t testing.TB, src, dst net.HardwareAddr, op uint16, senderIP, targetIP netip.Addr) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: src, SourceProtAddress: senderIP.AsSlice(),
		DstHwAddress: make([]byte, 6), DstProtAddress: targetIP.AsSlice()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, a); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDecode(t *testing.T) {
	f := Frame{Data: tcpFrame(t, macClient, macA, client, service, 1000, 2000, "P.", 16)}
	p, err := Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if p.ARP != nil || p.TCP == nil {
		t.Fatalf("want TCP, got %+v", p)
	}
	want := TCP{Src: client, Dst: service, Seq: 1000, Ack: 2000, Flags: PSH | ACK, Window: 502, Payload: 16}
	if *p.TCP != want || !bytes.Equal(p.Src, macClient) || !bytes.Equal(p.Dst, macA) {
		t.Fatalf("decoded %+v %v>%v, want %+v", *p.TCP, p.Src, p.Dst, want)
	}
	if got := p.TCP.FlagString(); got != "P." {
		t.Errorf("flags %q", got)
	}

	g, err := Decode(Frame{Data: arpFrame(t, macB, bcast, 2, vip, vip)})
	if err != nil || g.ARP == nil || !g.ARP.Gratuitous() || g.ARP.SenderIP != vip || !bytes.Equal(g.ARP.SenderMAC, macB) || g.ARP.Op != 2 {
		t.Fatalf("gratuitous ARP: %+v %v", g.ARP, err)
	}
	q, err := Decode(Frame{Data: arpFrame(t, macClient, bcast, 1, client.Addr(), vip)})
	if err != nil || q.ARP.Gratuitous() || q.ARP.TargetIP != vip {
		t.Fatalf("ARP request: %+v %v", q.ARP, err)
	}

	// Frames cut inside the headers are refused, never a panic; a frame
	// cut after the first 20 bytes of TCP (a snap length) is decoded.
	full := tcpFrame(t, macClient, macA, client, service, 1, 2, ".", 0)
	if _, err := Decode(Frame{Data: full[:14+20+20]}); err != nil {
		t.Errorf("a frame cut after the TCP header: %v", err)
	}
	for n := range 14 + 20 + 20 {
		if _, err := Decode(Frame{Data: full[:n]}); err == nil {
			t.Fatalf("a frame cut to %d bytes was decoded", n)
		}
	}
	udp := append([]byte{}, full...)
	udp[14+9] = 17
	if _, err := Decode(Frame{Data: udp}); err == nil {
		t.Error("UDP was decoded as TCP")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(tcpFrame(f, macClient, macA, client, service, 1, 2, "P.", 3))
	f.Add(arpFrame(f, macB, bcast, 2, vip, vip))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(Frame{Data: b})
		if err == nil && (p.TCP == nil) == (p.ARP == nil) {
			t.Fatalf("decoded %+v: want exactly one of TCP and ARP", p)
		}
	})
}

func TestRingWindowAndAround(t *testing.T) {
	r := NewRing(&RingConfig{MaxFrames: 5})
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for i := range 8 {
		r.Add(Frame{Time: at(100 * i), Data: []byte{byte(i)}, Len: 1})
	}
	if r.Len() != 5 {
		t.Fatalf("ring holds %d frames, want 5", r.Len())
	}
	all := r.Window(at(0), at(10000))
	if len(all) != 5 || all[0].Data[0] != 3 || all[4].Data[0] != 7 {
		t.Fatalf("window of the whole ring: %v", all)
	}
	if w := r.Window(at(400), at(600)); len(w) != 3 || w[0].Data[0] != 4 || w[2].Data[0] != 6 {
		t.Fatalf("window 400..600 ms: %v", w)
	}

	// A hand-off from 1000 to 1010 ms among frames every 50 ms: 200 ms
	// before and 300 ms after it.
	var fs []Frame
	for i := range 60 {
		fs = append(fs, Frame{Time: at(50 * i), Data: []byte{byte(i)}})
	}
	w := Around(fs, at(1000), at(1010), Cut{Before: 200 * time.Millisecond, After: 300 * time.Millisecond})
	if len(w) != 11 || !w[0].Time.Equal(at(800)) || !w[len(w)-1].Time.Equal(at(1300)) {
		t.Fatalf("around: %d frames from %v to %v", len(w), w[0].Time.Sub(t0), w[len(w)-1].Time.Sub(t0))
	}
	// Too many frames: the ones nearest the hand-off are kept, in order.
	w = Around(fs, at(1000), at(1100), Cut{Before: 200 * time.Millisecond, After: 300 * time.Millisecond, Max: 5})
	if len(w) != 5 || !w[0].Time.Equal(at(950)) || !w[4].Time.Equal(at(1150)) {
		t.Fatalf("thinned: %v", w)
	}
	for i := 1; i < len(w); i++ {
		if !w[i].Time.After(w[i-1].Time) {
			t.Fatalf("thinned frames out of order: %v", w)
		}
	}
	// Frames marked to keep stay, however far; the rest fills up to Max.
	marked := func(f Frame) bool { return f.Data[0] == 16 || f.Data[0] == 25 }
	w = Around(fs, at(1000), at(1100), Cut{Before: time.Second, After: time.Second, Max: 5, Keep: marked})
	var got []byte
	for _, f := range w {
		got = append(got, f.Data[0])
	}
	if string(got) != string([]byte{16, 20, 21, 22, 25}) {
		t.Fatalf("thinned with frames to keep: %v", got)
	}
	if w := Around(fs, at(9000), at(9100), Cut{}); len(w) != 0 {
		t.Fatalf("a window after every frame: %d frames", len(w))
	}
}

func TestWritePCAPReadsBack(t *testing.T) {
	t0 := time.Unix(1700000000, 123456000)
	frames := []Frame{
		{Time: t0, Data: tcpFrame(t, macClient, macA, client, service, 1, 1, "P.", 16)},
		{Time: t0.Add(time.Millisecond), Data: arpFrame(t, macB, bcast, 2, vip, vip)},
		{Time: t0.Add(2 * time.Millisecond), Data: tcpFrame(t, macClient, macB, client, service, 17, 17, "P.", 2000)},
	}
	for i := range frames {
		frames[i].Len = len(frames[i].Data)
	}
	var buf bytes.Buffer
	if err := WritePCAP(&buf, frames); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		t.Fatalf("link type %v", r.LinkType())
	}
	for i, f := range frames {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := f.Data[:min(len(f.Data), Snaplen)]
		if !bytes.Equal(data, want) || ci.Length != f.Len || !ci.Timestamp.Equal(f.Time.Truncate(time.Microsecond)) {
			t.Fatalf("frame %d: %d/%d bytes at %v", i, len(data), ci.Length, ci.Timestamp)
		}
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if pkt.Layer(layers.LayerTypeTCP) == nil && pkt.Layer(layers.LayerTypeARP) == nil {
			t.Fatalf("frame %d holds neither TCP nor ARP: %v", i, pkt)
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the frames: %v", err)
	}
}

// switchFrames is the client's wire around a hand-off: ping-pongs with A,
// a segment caught during the switch, B's gratuitous ARP, ping-pongs with
// B; plus another connection and an ARP about another address.
func switchFrames(t testing.TB) (frames []Frame, garpAt time.Time) {
	t0 := time.Unix(5000, 0)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }
	other := netip.MustParseAddrPort("192.0.2.10:40001")
	cs, ss := uint32(1_000_000), uint32(7_000_000)
	add := func(us int, data []byte) { frames = append(frames, Frame{Time: at(us), Data: data, Len: len(data)}) }
	us := 0
	for range 8 { // with A
		add(us, tcpFrame(t, macClient, macA, client, service, cs, ss, "P.", 16))
		add(us+50, tcpFrame(t, macA, macClient, service, client, ss, cs+16, "P.", 16))
		add(us+60, tcpFrame(t, macClient, macA, other, service, 5, 5, "P.", 100))
		cs, ss, us = cs+16, ss+16, us+1000
	}
	// Sent during the switch, still to A's MAC.
	add(us, tcpFrame(t, macClient, macA, client, service, cs, ss, "P.", 16))
	add(us+100, arpFrame(t, macA, bcast, 1, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.10")))
	add(us+2000, arpFrame(t, macB, bcast, 2, vip, vip))
	garpAt = at(us + 2000)
	add(us+2100, tcpFrame(t, macB, macClient, service, client, ss, cs+16, "P.", 16))
	cs, ss, us = cs+16, ss+16, us+3000
	for range 8 { // with B
		add(us, tcpFrame(t, macClient, macB, client, service, cs, ss, "P.", 16))
		add(us+50, tcpFrame(t, macB, macClient, service, client, ss, cs+16, "P.", 16))
		cs, ss, us = cs+16, ss+16, us+1000
	}
	return frames, garpAt
}

func lanes() []Host {
	return []Host{
		{Name: "client", Addr: client.Addr(), MAC: macClient},
		{Name: "server A", Addr: netip.MustParseAddr("192.0.2.1"), MAC: macA},
		{Name: "server B", Addr: netip.MustParseAddr("192.0.2.2"), MAC: macB},
	}
}

func TestBuildSequence(t *testing.T) {
	frames, garpAt := switchFrames(t)
	seq := BuildSequence(frames, SequenceConfig{Lanes: lanes(), VIP: vip, Conn: client, Before: 3, After: 3})
	if seq.Conn != client || seq.Server != service || !seq.Announced {
		t.Fatalf("conn %v server %v announced %v", seq.Conn, seq.Server, seq.Announced)
	}
	// 3 segments before, the ARP, 3 after; the ARP about another address
	// is not drawn.
	if len(seq.Arrows) != 7 {
		t.Fatalf("%d arrows, want 7: %+v", len(seq.Arrows), seq.Arrows)
	}
	g := seq.Arrows[3]
	if g.Kind != KindARP || g.From != 2 || g.To != 0 || !g.Broadcast || g.At != 0 ||
		!strings.Contains(g.Label, "192.0.2.100 is at "+macB.String()) {
		t.Fatalf("the gratuitous ARP: %+v", g)
	}
	for i, a := range seq.Arrows[:3] {
		if a.At >= 0 || (a.From != 1 && a.To != 1) {
			t.Errorf("arrow %d before the switch is not with A: %+v", i, a)
		}
	}
	// The last segment before the switch went to A's MAC, during the switch.
	if a := seq.Arrows[2]; a.From != 0 || a.To != 1 {
		t.Errorf("the segment sent during the switch: %+v", a)
	}
	for i, a := range seq.Arrows[4:] {
		if a.At <= 0 || (a.From != 2 && a.To != 2) || a.Kind != KindTCP {
			t.Errorf("arrow %d after the switch is not with B: %+v", i, a)
		}
	}
	// Sequence numbers continue across the switch: client segments step
	// by 16 from the first one drawn, and B acknowledges every byte.
	var wantSeq uint32
	for _, a := range seq.Arrows {
		if a.Kind == KindTCP && a.From == 0 {
			if a.Seq != wantSeq {
				t.Errorf("client segment at %v: seq %d, want %d", a.At, a.Seq, wantSeq)
			}
			wantSeq += 16
		}
	}
	if last := seq.Arrows[len(seq.Arrows)-1]; last.From != 2 || last.Ack != wantSeq {
		t.Errorf("B's last ack %d, want %d", last.Ack, wantSeq)
	}

	// Without a connection given, the busiest one is followed; without an
	// ARP, the given moment is the switch.
	var noARP []Frame
	for _, f := range frames {
		if p, _ := Decode(f); p.ARP == nil {
			noARP = append(noARP, f)
		}
	}
	seq = BuildSequence(noARP, SequenceConfig{Lanes: lanes(), VIP: vip, Switch: garpAt})
	if seq.Conn != client || seq.Announced || len(seq.Arrows) != 10 {
		t.Fatalf("no ARP: conn %v announced %v, %d arrows", seq.Conn, seq.Announced, len(seq.Arrows))
	}
	if seq.Arrows[4].At >= 0 || seq.Arrows[5].At <= 0 {
		t.Errorf("no ARP: the switch is not between arrows 4 and 5: %v %v", seq.Arrows[4].At, seq.Arrows[5].At)
	}

	if seq := BuildSequence(nil, SequenceConfig{Lanes: lanes(), VIP: vip}); len(seq.Arrows) != 0 || seq.Conn.IsValid() {
		t.Fatalf("no frames: %+v", seq)
	}
}

func TestBuildSequenceShowsReset(t *testing.T) {
	t0 := time.Unix(1, 0)
	frames := []Frame{
		{Time: t0, Data: tcpFrame(t, macClient, macA, client, service, 10, 20, "P.", 16)},
		{Time: t0.Add(time.Millisecond), Data: tcpFrame(t, macA, macClient, service, client, 20, 0, "R", 0)},
	}
	seq := BuildSequence(frames, SequenceConfig{Lanes: lanes(), VIP: vip, Switch: t0.Add(time.Microsecond)})
	if len(seq.Arrows) != 2 || seq.Arrows[1].Kind != KindRST || seq.Arrows[1].Label != "[R] seq 0 len 0" {
		t.Fatalf("reset: %+v", seq.Arrows)
	}
	if !bytes.Contains(seq.SVG(), []byte(colorRST)) {
		t.Error("the reset is not drawn in its color")
	}
}

func TestSequenceSVG(t *testing.T) {
	frames, _ := switchFrames(t)
	seq := BuildSequence(frames, SequenceConfig{Lanes: lanes(), VIP: vip, Conn: client})
	svg := seq.SVG()
	// Well-formed XML with an svg root, one arrow line per frame drawn.
	dec := xml.NewDecoder(bytes.NewReader(svg))
	root, texts := "", []string{}
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tk.Name.Local
			}
			inText = tk.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(tk))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q", root)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{"client", "server A", "server B", macB.String(), "gratuitous ARP", "the switch", "+0.000 ms", "seq 0 ack 0 len 16"} {
		if !strings.Contains(all, want) {
			t.Errorf("the diagram lacks %q", want)
		}
	}
	if n := bytes.Count(svg, []byte("marker-end=")); n != len(seq.Arrows) {
		t.Errorf("%d arrows drawn, want %d", n, len(seq.Arrows))
	}
	empty := Sequence{Lanes: lanes()}.SVG()
	if !bytes.Contains(empty, []byte("no packet of the connection was captured")) {
		t.Error("an empty diagram does not say so")
	}
}

// A step-mode hand-off pauses at each phase: the frames around every
// phase are kept, not only those around its two ends, and what the ring
// lost meanwhile comes back from the copies taken at each step.
func TestAroundKeepsEachPhase(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	r := NewRing(&RingConfig{MaxFrames: 20})
	var copies [][]Frame
	last, mark := at(0), time.Time{}
	for i := range 100 { // a frame every 100 ms, for 10 s
		r.Add(Frame{Time: at(100 * i), Data: []byte{byte(i)}, Len: 1})
		switch {
		case i%25 == 24: // a step every 2.5 s: what led to it
			mark = at(100 * i)
			copies = append(copies, r.Ends(last, mark, 3))
			last = mark
		case i%25 == 4 && !mark.IsZero(): // and, a moment later, what followed it
			copies = append(copies, r.Ends(mark, at(100*i), 3))
		}
	}
	frames := Merge(append(copies, r.Window(at(0), at(10000)))...)
	for i := 1; i < len(frames); i++ {
		if !frames[i].Time.After(frames[i-1].Time) {
			t.Fatalf("merged frames out of order or twice: %v then %v", frames[i-1].Time.Sub(t0), frames[i].Time.Sub(t0))
		}
	}
	// The ring alone holds the last 2 s; the copies give back the frames
	// around the earlier steps.
	has := func(fs []Frame, ms int) bool {
		for _, f := range fs {
			if f.Time.Equal(at(ms)) {
				return true
			}
		}
		return false
	}
	for _, ms := range []int{2400, 2500, 4900, 5000} {
		if !has(frames, ms) {
			t.Errorf("the frame at %d ms, by a step, is lost", ms)
		}
	}
	marks := []time.Time{at(2450), at(4950)}
	w := Around(frames, at(500), at(9900), Cut{Max: 6, Marks: marks})
	for _, ms := range []int{500, 2400, 2500, 4900, 5000, 9900} {
		if !has(w, ms) {
			t.Errorf("cut to 6 frames around the marks: no frame at %d ms (%d kept)", ms, len(w))
		}
	}
	if w := Around(frames, at(500), at(9900), Cut{Max: 6}); has(w, 2500) {
		t.Errorf("without marks the cut keeps only the two ends, yet it has the frame at 2500 ms")
	}
}
