package neigh

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sockshift/sockshift/handoff/nstest"
)

// Each entry reads as `ip neigh show` prints it, in every state the
// console meets, in a namespace of the test's own; and from inside the
// namespace ("" namespace) alike.
func TestEntriesReadAsIPPrintsThem(t *testing.T) {
	ns := nstest.NewNS(t, "tneigh")
	nstest.Run(t, "ip", "-n", ns, "link", "add", "eth7", "type", "veth", "peer", "name", "eth8")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "eth7", "up")
	nstest.Run(t, "ip", "-n", ns, "link", "set", "eth8", "up")
	nstest.Run(t, "ip", "-n", ns, "addr", "add", "192.0.2.10/24", "dev", "eth7")
	vip := netip.MustParseAddr("192.0.2.100")
	if got, err := Lookup(ns, vip, ""); err != nil || len(got) != 0 {
		t.Fatalf("before any entry: %v, %v", got, err)
	}
	for _, c := range []struct{ lladdr, nud string }{
		{"52:54:00:12:34:56", "reachable"},
		{"52:54:00:12:34:57", "stale"},
		{"52:54:00:12:34:58", "permanent"},
		{"", "failed"},
		{"", "incomplete"},
		{"52:54:00:12:34:59", "noarp"},
	} {
		args := []string{"-n", ns, "neigh", "replace", vip.String(), "dev", "eth7", "nud", c.nud}
		if c.lladdr != "" {
			args = append(args, "lladdr", c.lladdr)
		}
		nstest.Run(t, "ip", args...)
		want := strings.TrimSpace(nstest.Run(t, "ip", "-n", ns, "neigh", "show", vip.String()))
		wantDev := strings.TrimSpace(nstest.Run(t, "ip", "-n", ns, "-4", "neigh", "show", vip.String(), "dev", "eth7"))
		got, err := Lookup(ns, vip, "")
		if want == "" && err == nil && len(got) == 0 {
			continue // ip leaves it out too (NOARP)
		}
		if err != nil || len(got) != 1 || got[0].String() != want {
			t.Errorf("nud %s: got %v (%v), want %q", c.nud, got, err, want)
			continue
		}
		if gd, err := Lookup(ns, vip, "eth7"); err != nil || len(gd) != 1 || gd[0].WithoutDev() != wantDev {
			t.Errorf("nud %s on eth7: got %v (%v), want %q", c.nud, gd, err, wantDev)
		}
		if c.lladdr != "" && got[0].MAC.String() != c.lladdr {
			t.Errorf("nud %s: MAC %v, want %s", c.nud, got[0].MAC, c.lladdr)
		}
	}
	nstest.Run(t, "ip", "-n", ns, "neigh", "replace", vip.String(), "dev", "eth7", "nud", "reachable", "lladdr", "52:54:00:12:34:56")
	var inside []Entry
	err := nstest.Do(ns, func() (err error) {
		inside, err = Lookup("", vip, "eth7")
		return err
	})
	if err != nil || len(inside) != 1 || inside[0].Dev != "eth7" {
		t.Fatalf("from inside the namespace: %v, %v", inside, err)
	}
	if _, err := Lookup(ns, vip, "nosuch0"); err == nil {
		t.Fatal("an unknown device: no error")
	}
}
