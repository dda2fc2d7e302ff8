package vip_test

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sockshift/sockshift/handoff/nstest"
	"github.com/sockshift/sockshift/handoff/vip"
)

var theVIP = netip.MustParseAddr("192.0.2.100")

// newIface makes a namespace of the test's own with an interface d0 (one
// end of a veth pair; not every kernel has the dummy driver) that already
// carries 192.0.2.1/24, an address the VIP must never disturb.
func newIface(t *testing.T) string {
	t.Helper()
	ns := nstest.NewNS(t, "vip")
	nstest.Exec(t, ns, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	nstest.Exec(t, ns, "ip", "addr", "add", "192.0.2.1/24", "dev", "d0")
	nstest.Exec(t, ns, "ip", "link", "set", "d0", "up")
	return ns
}

// ipv4Addrs lists the interface's IPv4 addresses as the ip tool shows them.
func ipv4Addrs(t *testing.T, ns, ifname string) []string {
	t.Helper()
	out := nstest.Run(t, "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", ifname)
	return regexp.MustCompile(`inet (\S+)`).FindAllString(out, -1)
}

func has(list []string, want string) bool {
	for _, s := range list {
		if s == "inet "+want {
			return true
		}
	}
	return false
}

func do(t *testing.T, ns string, fn func() error) {
	t.Helper()
	if err := nstest.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

func held(t *testing.T, ns string) bool {
	t.Helper()
	var h bool
	do(t, ns, func() (err error) { h, err = vip.Held("d0", theVIP); return err })
	return h
}

func TestAddRemove(t *testing.T) {
	ns := newIface(t)

	if held(t, ns) {
		t.Fatal("Held before Add: true")
	}
	do(t, ns, func() error { return vip.Add("d0", theVIP) })
	addrs := ipv4Addrs(t, ns, "d0")
	if !has(addrs, "192.0.2.100/32") || !has(addrs, "192.0.2.1/24") {
		t.Fatalf("after Add, ip addr shows %q; want 192.0.2.100/32 beside 192.0.2.1/24", addrs)
	}
	if !held(t, ns) {
		t.Fatal("Held after Add: false")
	}

	// Adding again is not an error and leaves exactly one copy.
	do(t, ns, func() error { return vip.Add("d0", theVIP) })
	if got := ipv4Addrs(t, ns, "d0"); len(got) != 2 {
		t.Fatalf("after a second Add, ip addr shows %q; want two addresses", got)
	}

	do(t, ns, func() error { return vip.Remove("d0", theVIP) })
	addrs = ipv4Addrs(t, ns, "d0")
	if has(addrs, "192.0.2.100/32") {
		t.Fatalf("after Remove, ip addr still shows the VIP: %q", addrs)
	}
	if !has(addrs, "192.0.2.1/24") || len(addrs) != 1 {
		t.Fatalf("Remove disturbed the other address: ip addr shows %q; want only 192.0.2.1/24", addrs)
	}
	if held(t, ns) {
		t.Fatal("Held after Remove: true")
	}

	// Removing an absent address is not an error and changes nothing.
	do(t, ns, func() error { return vip.Remove("d0", theVIP) })
	if got := ipv4Addrs(t, ns, "d0"); len(got) != 1 || !has(got, "192.0.2.1/24") {
		t.Fatalf("after a second Remove, ip addr shows %q; want only 192.0.2.1/24", got)
	}
}

// Held must see an address the ip tool assigned, not only its own.
func TestHeldSeesToolAddress(t *testing.T) {
	ns := newIface(t)
	nstest.Exec(t, ns, "ip", "addr", "add", "192.0.2.100/32", "dev", "d0")
	if !held(t, ns) {
		t.Fatal("Held: false for an address added with ip addr add")
	}
	do(t, ns, func() error { return vip.Remove("d0", theVIP) })
	if got := ipv4Addrs(t, ns, "d0"); has(got, "192.0.2.100/32") {
		t.Fatalf("Remove left the tool's address: %q", got)
	}
}

// The calls act in the caller's namespace: an Add inside one namespace
// must not show up in another namespace with an interface of the same name.
func TestActsInCallersNamespace(t *testing.T) {
	ns1, ns2 := newIface(t), newIface(t)
	do(t, ns1, func() error { return vip.Add("d0", theVIP) })
	if got := ipv4Addrs(t, ns2, "d0"); has(got, "192.0.2.100/32") {
		t.Fatalf("Add in %s changed %s: %q", ns1, ns2, got)
	}
	if !has(ipv4Addrs(t, ns1, "d0"), "192.0.2.100/32") {
		t.Fatalf("Add in %s did not add the VIP there", ns1)
	}
}

func TestErrors(t *testing.T) {
	ns := newIface(t)
	v6 := netip.MustParseAddr("2001:db8::1")
	calls := map[string]func(string, netip.Addr) error{
		"Add":    vip.Add,
		"Remove": vip.Remove,
		"Held":   func(i string, a netip.Addr) error { _, err := vip.Held(i, a); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := nstest.Do(ns, func() error { return call("d0", v6) })
			if err == nil || !strings.Contains(err.Error(), "not an IPv4 address") ||
				!strings.Contains(err.Error(), "d0") || !strings.Contains(err.Error(), "2001:db8::1") {
				t.Errorf("%s(IPv6) error = %v; want a clear IPv4-only error naming d0 and the address", name, err)
			}
			err = nstest.Do(ns, func() error { return call("nosuch0", theVIP) })
			if err == nil || !strings.Contains(err.Error(), "nosuch0") || !strings.Contains(err.Error(), "192.0.2.100") {
				t.Errorf("%s(missing interface) error = %v; want one naming nosuch0 and 192.0.2.100", name, err)
			}
		})
	}
}

// TestLinkFollowsAReplacedInterface: a Link opened once keeps working from
// any goroutine, and finds the interface again after it was deleted and
// made anew (a new index), as a lab rebuilt under a running node would.
func TestLinkFollowsAReplacedInterface(t *testing.T) {
	ns := newIface(t)
	var l *vip.Link
	do(t, ns, func() (err error) { l, err = vip.Open("d0"); return err })
	defer l.Close()
	if err := l.Add(theVIP); err != nil { // on whichever thread, in ns
		t.Fatal(err)
	}
	if !has(ipv4Addrs(t, ns, "d0"), "192.0.2.100/32") {
		t.Fatal("Link.Add: the VIP is not on d0")
	}
	nstest.Exec(t, ns, "ip", "link", "del", "d0")
	nstest.Exec(t, ns, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	nstest.Exec(t, ns, "ip", "link", "set", "d0", "up")
	if err := l.Add(theVIP); err != nil {
		t.Fatalf("Add on the new d0: %v", err)
	}
	if h, err := l.Held(theVIP); err != nil || !h {
		t.Fatalf("Held on the new d0: %v, %v", h, err)
	}
	if err := l.Remove(theVIP); err != nil || has(ipv4Addrs(t, ns, "d0"), "192.0.2.100/32") {
		t.Fatalf("Remove on the new d0: %v", err)
	}
	if _, err := vip.Open("nosuch0"); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("Open of a missing interface: %v", err)
	}
}

// BenchmarkAddAfterIdle is the first address change after 30 ms idle (a
// hand-off's pace): cold, and warmed by a query of the address just before
// (what a hand-off does while it waits on its peer). The figures of the
// comment on handoff's warmAddrs come from here.
func BenchmarkAddAfterIdle(b *testing.B) {
	for _, warm := range []bool{false, true} {
		name := "cold"
		if warm {
			name = "warm"
		}
		b.Run(name, func(b *testing.B) {
			l := benchLink(b)
			var add time.Duration
			for b.Loop() {
				b.StopTimer()
				time.Sleep(30 * time.Millisecond)
				if warm {
					l.Held(theVIP)
				}
				b.StartTimer()
				t0 := time.Now()
				if err := l.Add(theVIP); err != nil {
					b.Fatal(err)
				}
				add += time.Since(t0)
				b.StopTimer()
				if err := l.Remove(theVIP); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(add.Microseconds())/float64(b.N), "add-µs/op")
		})
	}
}

// benchLink opens d0 in a namespace of the benchmark's own: a veth with
// its peer up (a carrier, as a real link has) and 192.0.2.1/24.
func benchLink(b *testing.B) *vip.Link {
	ns := nstest.NewNS(b, "vipb")
	nstest.Exec(b, ns, "ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	nstest.Exec(b, ns, "ip", "addr", "add", "192.0.2.1/24", "dev", "d0")
	nstest.Exec(b, ns, "ip", "link", "set", "d0", "up")
	nstest.Exec(b, ns, "ip", "link", "set", "d1", "up")
	var l *vip.Link
	if err := nstest.Do(ns, func() (err error) { l, err = vip.Open("d0"); return err }); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// BenchmarkAddRemove is what a hand-off pays for the address: the target
// adds it at the commit, on the path every client waits on, and the
// source removes it at the release.
func BenchmarkAddRemove(b *testing.B) {
	l := benchLink(b)
	var add, remove time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := l.Add(theVIP); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := l.Remove(theVIP); err != nil {
			b.Fatal(err)
		}
		add, remove = add+t1.Sub(t0), remove+time.Since(t1)
	}
	b.ReportMetric(float64(add.Microseconds())/float64(b.N), "add-µs/op")
	b.ReportMetric(float64(remove.Microseconds())/float64(b.N), "remove-µs/op")
}
