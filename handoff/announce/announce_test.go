package announce

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// The frames are checked byte by byte against the RFC 826 layout, not
// against the library that built them.
func TestGratuitousFrames(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	vip := netip.MustParseAddr("192.0.2.100")
	frames, err := gratuitous(mac, vip)
	if err != nil {
		t.Fatal(err)
	}
	bcast := bytes.Repeat([]byte{0xff}, 6)
	for i, want := range []struct {
		op  byte
		tha []byte
	}{{1, make([]byte, 6)}, {2, mac}} {
		f := frames[i]
		if len(f) < 60 {
			t.Fatalf("frame %d: %d bytes; want at least 60 (minimum Ethernet frame)", i, len(f))
		}
		if !bytes.Equal(f[0:6], bcast) || !bytes.Equal(f[6:12], mac) || !bytes.Equal(f[12:14], []byte{0x08, 0x06}) {
			t.Errorf("frame %d: Ethernet header % x; want broadcast from %v, type ARP", i, f[:14], mac)
		}
		a := f[14:]
		hdr := []byte{0, 1, 0x08, 0x00, 6, 4, 0, want.op}
		if !bytes.Equal(a[:8], hdr) {
			t.Errorf("frame %d: ARP header % x; want % x", i, a[:8], hdr)
		}
		ip := vip.As4()
		if !bytes.Equal(a[8:14], mac) || !bytes.Equal(a[14:18], ip[:]) {
			t.Errorf("frame %d: sender %v %v; want %v %v", i, net.HardwareAddr(a[8:14]), net.IP(a[14:18]), mac, vip)
		}
		if !bytes.Equal(a[18:24], want.tha) || !bytes.Equal(a[24:28], ip[:]) {
			t.Errorf("frame %d: target %v %v; want %v %v", i, net.HardwareAddr(a[18:24]), net.IP(a[24:28]), net.HardwareAddr(want.tha), vip)
		}
	}
}

func TestGratuitousRejects(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	if _, err := gratuitous(mac, netip.MustParseAddr("2001:db8::100")); err == nil {
		t.Error("IPv6 address accepted")
	}
	if _, err := gratuitous(mac, netip.Addr{}); err == nil {
		t.Error("zero address accepted")
	}
	if _, err := gratuitous(mac[:4], netip.MustParseAddr("192.0.2.100")); err == nil {
		t.Error("4-byte hardware address accepted")
	}
	if _, err := gratuitous(mac, netip.MustParseAddr("::ffff:192.0.2.100")); err != nil {
		t.Errorf("IPv4-mapped address refused: %v", err)
	}
}
