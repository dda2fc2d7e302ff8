package appliance

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/sockshift/sockshift/demo/capture"
	"github.com/sockshift/sockshift/web"
)

var (
	fMacClient = net.HardwareAddr{2, 0, 0, 0, 0, 0x10}
	fMacA      = net.HardwareAddr{2, 0, 0, 0, 0, 0x01}
	fMacB      = net.HardwareAddr{2, 0, 0, 0, 0, 0x02}
	fVIP       = netip.MustParseAddr("192.0.2.100")
	fClient    = netip.MustParseAddrPort("192.0.2.10:40000")
	fService   = netip.AddrPortFrom(fVIP, 7)
)

// frames builds a client's frames, in time order, around a switch at t0.
type frames struct {
	t  *testing.T
	t0 time.Time
	fs []capture.Frame
	// the client's next sequence number and the server's
	cseq, sseq uint32
}

func newFrames(t *testing.T) *frames {
	return &frames{t: t, t0: time.Unix(1000, 0), cseq: 1000, sseq: 5000}
}

func (f *frames) add(ms int, data []byte) {
	f.fs = append(f.fs, capture.Frame{Time: f.t0.Add(time.Duration(ms) * time.Millisecond), Data: data, Len: len(data)})
}

func (f *frames) tcp(ms int, src, dst net.HardwareAddr, fromClient bool, seq, ack uint32, rst bool, payload int) {
	from, to := fClient, fService
	if !fromClient {
		from, to = to, from
	}
	eth := &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: from.Addr().AsSlice(), DstIP: to.Addr().AsSlice()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(from.Port()), DstPort: layers.TCPPort(to.Port()), Seq: seq, Ack: ack, Window: 500,
		ACK: !rst, RST: rst, PSH: payload > 0}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, tcp, gopacket.Payload(make([]byte, payload))); err != nil {
		f.t.Fatal(err)
	}
	f.add(ms, bytes.Clone(buf.Bytes()))
}

// ping: the client sends 16 bytes to the MAC it believes holds the VIP.
func (f *frames) ping(ms int, to net.HardwareAddr) {
	f.tcp(ms, fMacClient, to, true, f.cseq, f.sseq, false, 16)
}

// retransmit: the same 16 bytes again.
func (f *frames) retransmit(ms int, to net.HardwareAddr) {
	f.tcp(ms, fMacClient, to, true, f.cseq, f.sseq, false, 16)
}

// echo: a server acknowledges the ping and echoes it.
func (f *frames) echo(ms int, from net.HardwareAddr) {
	f.cseq += 16
	f.tcp(ms, from, fMacClient, false, f.sseq, f.cseq, false, 16)
	f.sseq += 16
}

func (f *frames) garp(ms int, from net.HardwareAddr) {
	eth := &layers.Ethernet{SrcMAC: from, DstMAC: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, EthernetType: layers.EthernetTypeARP}
	a := &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: 1, SourceHwAddress: from, SourceProtAddress: fVIP.AsSlice(), DstHwAddress: make([]byte, 6), DstProtAddress: fVIP.AsSlice()}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true}, eth, a); err != nil {
		f.t.Fatal(err)
	}
	f.add(ms, bytes.Clone(buf.Bytes()))
}

func (f *frames) fate() *web.Fate {
	roleOf := func(mac net.HardwareAddr) string {
		switch {
		case bytes.Equal(mac, fMacA):
			return "a"
		case bytes.Equal(mac, fMacB):
			return "b"
		}
		return ""
	}
	return readFate(f.fs, []netip.Addr{fVIP}, macs{source: fMacA, target: fMacB}, roleOf, f.t0)
}

// The report is written from what the client's frames show, for each way a
// hand-off can go: the note of a broken one never claims what did not
// happen.
func TestFateIsReadFromTheClientsFrames(t *testing.T) {
	skip := &web.Break{SkipAnnounce: true}
	keep := &web.Break{SkipAnnounce: true, KeepVIP: true}

	t.Run("moved", func(t *testing.T) {
		f := newFrames(t)
		f.ping(-20, fMacA)
		f.echo(-19, fMacA)
		f.garp(-1, fMacB)
		f.ping(5, fMacB)
		f.echo(6, fMacB)
		got := f.fate()
		if got.Seen != 1 || got.Moved != 1 || got.Stalled != 0 || got.ToSource != 0 || got.ReResolvedMS != 5 || got.AnnouncedMS != 0 {
			t.Errorf("a clean hand-off: %+v", got)
		}
	})

	t.Run("skipped announce stalls", func(t *testing.T) {
		f := newFrames(t)
		f.ping(-20, fMacA)
		f.echo(-19, fMacA)
		// B's window probe at repair-off is no answer to the client's data.
		f.tcp(1, fMacB, fMacClient, false, f.sseq-1, f.cseq, false, 0)
		f.ping(10, fMacA)
		for _, ms := range []int{220, 640, 1460} {
			f.retransmit(ms, fMacA)
		}
		f.garp(2000, fMacB)
		f.retransmit(2003, fMacB)
		f.echo(2004, fMacB)
		got := f.fate()
		if got.Moved != 1 || got.Stalled != 1 || got.WorstStallMS < 1990 || got.ToSource != 4 || got.ToSourceAnswered != 0 ||
			got.ReResolvedMS != 2003 || got.AnnouncedMS != 2000 {
			t.Fatalf("skipped announce: %+v", got)
		}
		note := noteFromFate("a", "b", skip, got, "Put right.")
		for _, want := range []string{"kept sending to server A's MAC (4 segments, 0 answered)", "stalled for up to 1.99 s", "went to server B's MAC from 2.00 s after", "gratuitous ARP at 2.00 s", "Put right."} {
			if !strings.Contains(note, want) {
				t.Errorf("note %q lacks %q", note, want)
			}
		}
	})

	t.Run("skipped announce forwarded by the source", func(t *testing.T) {
		f := newFrames(t)
		for ms := 10; ms < 500; ms += 50 {
			f.ping(ms, fMacA)
			f.echo(ms+1, fMacB)
		}
		got := f.fate()
		if got.Stalled != 0 || got.ToSource != 10 || got.ToSourceAnswered != 10 || got.ReResolvedMS != -1 || got.AnnouncedMS != -1 {
			t.Fatalf("forwarded: %+v", got)
		}
		note := noteFromFate("a", "b", skip, got, "")
		if !strings.Contains(note, "no connection stalled") || !strings.Contains(note, "forwarding") || strings.Contains(note, "stalled for") {
			t.Errorf("a skipped announce that did not stall must say so: %q", note)
		}
	})

	t.Run("a frozen source acknowledges, the echo comes after the resume", func(t *testing.T) {
		// Step mode: the ping is acknowledged by A's frozen socket (repair
		// mode leaves the kernel's TCP running until the address goes) and
		// echoed by B 5 s later: the client waited 5 s, as its gap says.
		f := newFrames(t)
		f.ping(-5000, fMacA)
		f.tcp(-4999, fMacA, fMacClient, false, f.sseq, f.cseq+16, false, 0)
		f.garp(-1, fMacB)
		f.echo(10, fMacB)
		got := f.fate()
		if got.Stalled != 1 || got.WorstStallMS != 5010 || got.Moved != 1 {
			t.Fatalf("frozen, then echoed: %+v", got)
		}
	})

	t.Run("address kept: reset", func(t *testing.T) {
		f := newFrames(t)
		f.ping(10, fMacA)
		f.tcp(11, fMacA, fMacClient, false, 0, f.cseq+16, true, 0)
		got := f.fate()
		if got.Reset != 1 || got.ResetBy != "a" || got.Moved != 0 {
			t.Fatalf("reset: %+v", got)
		}
		note := noteFromFate("a", "b", keep, got, "Put right.")
		if !strings.Contains(note, "1 of the client's 1 connections were reset (RST) by server A's kernel") || strings.Contains(note, "moved") {
			t.Errorf("note %q", note)
		}
	})
}
