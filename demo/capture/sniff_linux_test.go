package capture

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/mdlayher/packet"
	"github.com/sockshift/sockshift/handoff/nstest"
)

// A client and a server namespace joined by a veth pair: the sniffer in
// the client's namespace sees the frames the client sends and receives,
// TCP and ARP, and they read back from the pcap it writes.
func TestSniffSeesBothWaysAndARP(t *testing.T) {
	nstest.Privileged(t)
	cns, sns := nstest.NewNS(t, "capc"), nstest.NewNS(t, "caps")
	nstest.Exec(t, cns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", sns)
	nstest.Exec(t, cns, "ip", "addr", "add", "192.0.2.10/24", "dev", "eth0")
	nstest.Exec(t, sns, "ip", "addr", "add", "192.0.2.100/24", "dev", "eth0")
	nstest.Exec(t, cns, "ip", "link", "set", "eth0", "up")
	nstest.Exec(t, sns, "ip", "link", "set", "eth0", "up")
	macOf := func(ns string) net.HardwareAddr {
		var mac net.HardwareAddr
		if err := nstest.Do(ns, func() error {
			ifi, err := net.InterfaceByName("eth0")
			if err == nil {
				mac = ifi.HardwareAddr
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return mac
	}
	cmac, smac := macOf(cns), macOf(sns)

	ring := NewRing(nil)
	var seen int
	sn, err := Sniff(cns, "eth0", ring, &SniffConfig{Seen: func(Packet) { seen++ }})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	start := time.Now()

	// An echo server on the server side.
	var ln net.Listener
	if err := nstest.Do(sns, func() (err error) { ln, err = net.Listen("tcp", "192.0.2.100:7"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()
	var conn net.Conn
	if err := nstest.Do(cns, func() (err error) { conn, err = net.DialTimeout("tcp", "192.0.2.100:7", 5*time.Second); return }); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	for range 3 {
		if _, err := conn.Write([]byte("0123456789abcdef")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, make([]byte, 16)); err != nil {
			t.Fatal(err)
		}
	}
	local := netip.MustParseAddrPort(conn.LocalAddr().String())
	conn.Close()

	// A gratuitous ARP from the server side, as a new holder of the VIP sends.
	if err := nstest.Do(sns, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		pc, err := packet.Listen(ifi, packet.Raw, 0x0806, nil)
		if err != nil {
			return err
		}
		defer pc.Close()
		_, err = pc.WriteTo(arpFrame(t, smac, bcast, 2, vip, vip), &packet.Addr{HardwareAddr: bcast})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	// Wait for the frames: 3 round trips plus handshake and close.
	deadline := time.Now().Add(5 * time.Second)
	var frames []Frame
	var out, in, garp int
	for time.Now().Before(deadline) {
		frames = ring.Window(start, time.Now())
		out, in, garp = 0, 0, 0
		for _, f := range frames {
			p, err := Decode(f)
			if err != nil {
				t.Fatalf("the ring holds a frame that does not decode: %v", err)
			}
			switch {
			case p.ARP != nil && p.ARP.Gratuitous() && p.ARP.SenderIP == vip:
				garp++
			case p.TCP != nil && p.TCP.Src == local && bytes.Equal(p.Src, cmac):
				out++
			case p.TCP != nil && p.TCP.Dst == local && bytes.Equal(p.Src, smac):
				in++
			}
		}
		if out >= 4 && in >= 4 && garp == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out < 4 || in < 4 || garp != 1 {
		t.Fatalf("captured %d frames out, %d in, %d gratuitous ARP (of %d)", out, in, garp, len(frames))
	}

	var buf bytes.Buffer
	if err := WritePCAP(&buf, frames); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	n, tcp, arp := 0, 0, 0
	for {
		data, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if pkt.Layer(layers.LayerTypeTCP) != nil {
			tcp++
		}
		if pkt.Layer(layers.LayerTypeARP) != nil {
			arp++
		}
	}
	if n != len(frames) || tcp < 8 || arp < 1 {
		t.Fatalf("pcap: %d frames (want %d), %d TCP, %d ARP", n, len(frames), tcp, arp)
	}
	if err := sn.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if seen < len(frames) {
		t.Errorf("Seen called %d times for %d frames", seen, len(frames))
	}
}
