package announce

import (
	"bytes"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/sockshift/sockshift/handoff/nstest"
)

var vip = netip.MustParseAddr("192.0.2.100")

const staleMAC = "02:00:00:00:00:99"

// segment joins a server namespace (v0, 192.0.2.1) and a client namespace
// (v1, 192.0.2.10) with a veth pair. The client's neighbour entries may
// only be overridden by gratuitous ARP (locktime 1000 s), so a frame the
// kernel does not take as gratuitous cannot pass the test by waiting.
func segment(t *testing.T) (server, client string) {
	t.Helper()
	server, client = nstest.NewNS(t, "ans"), nstest.NewNS(t, "anc")
	nstest.Run(t, "ip", "-n", server, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", client)
	nstest.Run(t, "ip", "-n", server, "addr", "add", "192.0.2.1/24", "dev", "v0")
	nstest.Run(t, "ip", "-n", client, "addr", "add", "192.0.2.10/24", "dev", "v1")
	nstest.Run(t, "ip", "-n", server, "link", "set", "v0", "up")
	nstest.Run(t, "ip", "-n", client, "link", "set", "v1", "up")
	nstest.Run(t, "ip", "-n", client, "ntable", "change", "name", "arp_cache", "dev", "v1", "locktime", "1000000")
	return server, client
}

// poison makes the client believe the VIP is at staleMAC, as after a
// hand-off from a host with that MAC, and checks it with the ip tool.
func poison(t *testing.T, client string) {
	t.Helper()
	nstest.Run(t, "ip", "-n", client, "neigh", "replace", vip.String(), "lladdr", staleMAC, "dev", "v1", "nud", "stale")
	if got := neighMAC(t, client); got != staleMAC {
		t.Fatalf("client neighbour entry for %v: %q before announcing; want %s", vip, got, staleMAC)
	}
}

var lladdr = regexp.MustCompile(`lladdr (\S+)`)

func neighMAC(t *testing.T, client string) string {
	t.Helper()
	out := nstest.Run(t, "ip", "-n", client, "neigh", "show", vip.String(), "dev", "v1")
	if m := lladdr.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// waitNeigh waits (bounded) for the client's entry to carry want: the
// kernel updates it in the receive path, which may run just after the
// capture socket saw the frame.
func waitNeigh(t *testing.T, client string, want net.HardwareAddr) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = neighMAC(t, client); got == want.String() {
			return
		}
	}
	t.Fatalf("ip neigh show %v in the client: lladdr %q; want the announcer's %v", vip, got, want)
}

func linkMAC(t *testing.T, ns, ifname string) string {
	t.Helper()
	out := nstest.Run(t, "ip", "-n", ns, "link", "show", ifname)
	m := regexp.MustCompile(`link/ether (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no MAC in ip link show %s: %s", ifname, out)
	}
	return m[1]
}

func newAnnouncer(t *testing.T, ns, ifname string) *Announcer {
	t.Helper()
	var a *Announcer
	if err := nstest.Do(ns, func() (err error) { a, err = New(ifname); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// capture opens an ARP packet socket on the client's interface.
func capture(t *testing.T, client string) *packet.Conn {
	t.Helper()
	var c *packet.Conn
	err := nstest.Do(client, func() error {
		ifi, err := net.InterfaceByName("v1")
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, 0x0806, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestAnnounceMovesClientNeighbour(t *testing.T) {
	server, client := segment(t)
	poison(t, client)
	capt := capture(t, client)
	a := newAnnouncer(t, server, "v0")

	if got, want := a.HardwareAddr().String(), linkMAC(t, server, "v0"); got != want {
		t.Fatalf("HardwareAddr = %s; ip link show v0 says %s", got, want)
	}
	if err := a.Announce(vip); err != nil {
		t.Fatal(err)
	}

	// The client must receive a broadcast request and a broadcast reply,
	// both with sender = target = VIP and sender MAC = the announcer's.
	seen := map[arp.Operation]bool{}
	buf := make([]byte, 1500)
	if err := capt.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for !seen[arp.OperationRequest] || !seen[arp.OperationReply] {
		n, _, err := capt.ReadFrom(buf)
		if err != nil {
			t.Fatalf("capture in the client: %v (seen %v)", err, seen)
		}
		var f ethernet.Frame
		if err := f.UnmarshalBinary(buf[:n]); err != nil {
			t.Fatalf("captured frame: %v", err)
		}
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil {
			t.Fatalf("captured ARP: %v", err)
		}
		if p.SenderIP != vip {
			continue // the kernels' own ARP, if any
		}
		if !bytes.Equal(f.Destination, ethernet.Broadcast) {
			t.Errorf("%v frame sent to %v; want broadcast", p.Operation, f.Destination)
		}
		if !bytes.Equal(f.Source, a.HardwareAddr()) || !bytes.Equal(p.SenderHardwareAddr, a.HardwareAddr()) {
			t.Errorf("%v from %v, sender MAC %v; want %v", p.Operation, f.Source, p.SenderHardwareAddr, a.HardwareAddr())
		}
		if p.TargetIP != vip {
			t.Errorf("%v target IP %v; want %v (gratuitous)", p.Operation, p.TargetIP, vip)
		}
		seen[p.Operation] = true
	}

	waitNeigh(t, client, a.HardwareAddr())
}

// Receivers that heed only requests, or only replies, must each update
// their cache from that frame alone; Linux takes either, if it is well
// formed as a gratuitous ARP (a reply's target MAC must be its sender's).
func TestEachFrameAloneIsGratuitous(t *testing.T) {
	server, client := segment(t)
	a := newAnnouncer(t, server, "v0")
	frames, err := gratuitous(a.mac, vip)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"request", "reply"} {
		t.Run(name, func(t *testing.T) {
			poison(t, client)
			if _, err := a.conn.WriteTo(frames[i], &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
				t.Fatal(err)
			}
			waitNeigh(t, client, a.HardwareAddr())
		})
	}
}

func TestErrors(t *testing.T) {
	ns := nstest.NewNS(t, "ane")
	err := nstest.Do(ns, func() error { _, err := New("nosuch0"); return err })
	if err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("New(missing interface) error = %v; want one naming nosuch0", err)
	}
	err = nstest.Do(ns, func() error { _, err := New("lo"); return err })
	if err == nil || !strings.Contains(err.Error(), "not an Ethernet interface") {
		t.Errorf("New(lo) error = %v; want not an Ethernet interface", err)
	}

	server, _ := segment(t)
	a := newAnnouncer(t, server, "v0")
	if err := a.Announce(netip.MustParseAddr("2001:db8::100")); err == nil || !strings.Contains(err.Error(), "v0") {
		t.Errorf("Announce(IPv6) error = %v; want one naming v0", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Announce(vip); err == nil {
		t.Error("Announce after Close succeeded")
	}
}
