package lab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sockshift/sockshift/handoff/nstest"
)

func TestValidatePrefix(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"ss", true},
		{"a", true},
		{"lab-2", true},
		{"0abc", true},
		{"abcdefgh", true},
		{"", false},
		{"abcdefghi", false},
		{"-ss", false},
		{"SS", false},
		{"s_s", false},
		{"s s", false},
		{"s/s", false},
		{"s.s", false},
		{"é", false},
	} {
		if err := ValidatePrefix(tc.p); (err == nil) != tc.ok {
			t.Errorf("ValidatePrefix(%q) = %v; want ok=%v", tc.p, err, tc.ok)
		}
	}
}

func TestVIP(t *testing.T) {
	if got := VIP.String(); got != "192.0.2.100" {
		t.Errorf("VIP = %s", got)
	}
}

// newPrefix returns a unique lab prefix whose lab is removed when the test
// ends.
func newPrefix(t *testing.T) string {
	t.Helper()
	nstest.Privileged(t)
	p := nstest.UniqueName("") // 8 hex digits
	t.Cleanup(func() {
		if err := Down(context.Background(), p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return p
}

// labNamespaces lists, with the ip tool, the namespaces named after p.
func labNamespaces(t *testing.T, p string) []string {
	t.Helper()
	var got []string
	for line := range strings.Lines(nstest.Run(t, "ip", "netns", "list")) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], p+"-") {
			got = append(got, f[0])
		}
	}
	slices.Sort(got)
	return got
}

// hostLinks lists the interface names in the test's own (the host's)
// namespace.
func hostLinks(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\d+: ([^:@]+)`).FindAllStringSubmatch(nstest.Run(t, "ip", "-o", "link", "show"), -1) {
		names = append(names, m[1])
	}
	return names
}

func TestUpStatusDown(t *testing.T) {
	nstest.NeedTool(t, "ping", "iputils-ping")
	p := newPrefix(t)
	ctx := context.Background()
	before := hostLinks(t)

	l, err := Up(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{p + "-a", p + "-b", p + "-client", p + "-sw"}; !slices.Equal(labNamespaces(t, p), want) {
		t.Fatalf("ip netns list after Up: %v; want %v", labNamespaces(t, p), want)
	}
	if after := hostLinks(t); !slices.Equal(before, after) {
		t.Errorf("Up changed the host namespace's interfaces: %v, then %v", before, after)
	}

	// The hosts reach each other across the bridge.
	for _, pair := range [][2]string{{l.Client.Namespace, "192.0.2.1"}, {l.Client.Namespace, "192.0.2.2"}, {l.Servers[0].Namespace, "192.0.2.2"}} {
		if out, err := exec.Command("ip", "netns", "exec", pair[0], "ping", "-c1", "-W1", pair[1]).CombinedOutput(); err != nil {
			t.Errorf("ping %s from %s: %v\n%s", pair[1], pair[0], err, out)
		}
	}

	want := map[string][2]string{ // role: namespace, address
		"client": {p + "-client", "192.0.2.10/24"},
		"a":      {p + "-a", "192.0.2.1/24"},
		"b":      {p + "-b", "192.0.2.2/24"},
	}
	st, err := Status(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	hosts := st.Hosts()
	if len(hosts) != 3 || hosts[0].Role != "client" || hosts[1].Role != "a" || hosts[2].Role != "b" {
		t.Fatalf("Hosts() = %+v; want client, a, b", hosts)
	}
	for _, h := range hosts {
		w := want[h.Role]
		if h.Namespace != w[0] || h.Addr.String() != w[1] || h.Interface != "eth0" {
			t.Errorf("host %s: %s %s %s; want %s eth0 %s", h.Role, h.Namespace, h.Interface, h.Addr, w[0], w[1])
		}
		show := nstest.Run(t, "ip", "-n", h.Namespace, "link", "show", "eth0")
		m := regexp.MustCompile(`link/ether (\S+)`).FindStringSubmatch(show)
		if m == nil || h.MAC.String() != m[1] {
			t.Errorf("host %s: Status MAC %v; ip link show eth0 says:\n%s", h.Role, h.MAC, show)
		}
		if up := nstest.Run(t, "ip", "-n", h.Namespace, "link", "show", "lo"); !strings.Contains(up, ",UP") {
			t.Errorf("host %s: lo is not up:\n%s", h.Role, up)
		}
		if v6 := nstest.Run(t, "ip", "-n", h.Namespace, "-6", "addr", "show"); strings.TrimSpace(v6) != "" {
			t.Errorf("host %s: IPv6 still configured:\n%s", h.Role, v6)
		}
		if a := nstest.Run(t, "ip", "-n", h.Namespace, "-4", "addr", "show", "dev", "eth0"); strings.Contains(a, "192.0.2.100") {
			t.Errorf("host %s: the lab assigned the VIP:\n%s", h.Role, a)
		}
	}
	for i, h := range l.Hosts() {
		if h.MAC.String() != hosts[i].MAC.String() {
			t.Errorf("host %s: Up's MAC %v, Status's %v", h.Role, h.MAC, hosts[i].MAC)
		}
	}
	if br := nstest.Run(t, "ip", "-d", "-n", p+"-sw", "link", "show", "br0"); !strings.Contains(br, "stp_state 0") {
		t.Errorf("br0 does not have STP off:\n%s", br)
	}

	again, err := Up(ctx, p)
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second Up: %v; want ErrExists", err)
	}
	if again == nil || again.Servers[0].MAC.String() != st.Servers[0].MAC.String() {
		t.Errorf("second Up returned %+v; want the running lab", again)
	}

	if err := Down(ctx, p); err != nil {
		t.Fatal(err)
	}
	if left := labNamespaces(t, p); len(left) != 0 {
		t.Fatalf("ip netns list after Down: %v", left)
	}
	if err := Down(ctx, p); err != nil {
		t.Fatalf("second Down: %v", err)
	}
	if _, err := Status(ctx, p); !errors.Is(err, ErrNotUp) {
		t.Fatalf("Status after Down: %v; want ErrNotUp", err)
	}
}

func TestUpRefusesPartialLab(t *testing.T) {
	p := newPrefix(t)
	nstest.Run(t, "ip", "netns", "add", p+"-a")

	_, err := Up(context.Background(), p)
	if err == nil || !strings.Contains(err.Error(), "sockshift lab down --prefix "+p) || !errors.Is(err, ErrPartial) {
		t.Fatalf("Up over a partial lab: %v; want ErrPartial telling to run sockshift lab down --prefix %s", err, p)
	}
	if got := labNamespaces(t, p); !slices.Equal(got, []string{p + "-a"}) {
		t.Fatalf("Up over a partial lab changed the namespaces: %v", got)
	}
	if _, err := Status(context.Background(), p); !errors.Is(err, ErrNotUp) {
		t.Errorf("Status of a partial lab: %v; want ErrNotUp", err)
	}

	// All four namespaces, but empty, is partial too.
	for _, s := range []string{"-sw", "-client", "-b"} {
		nstest.Run(t, "ip", "netns", "add", p+s)
	}
	if _, err := Up(context.Background(), p); err == nil || !errors.Is(err, ErrPartial) {
		t.Fatalf("Up over four empty namespaces: %v; want ErrPartial", err)
	}

	if err := Down(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if left := labNamespaces(t, p); len(left) != 0 {
		t.Fatalf("Down of a partial lab left %v", left)
	}
}

// A step that fails half-way must leave nothing behind.
func TestUpCleansUpAfterFailure(t *testing.T) {
	p := newPrefix(t)
	for _, failAt := range []string{"netns add " + p + "-b", "addr add 192.0.2.2/24"} {
		t.Run(failAt, func(t *testing.T) {
			injected := errors.New("injected failure")
			var ran bool
			ip := func(ctx context.Context, args ...string) ([]byte, error) {
				if strings.Contains(strings.Join(args, " "), failAt) {
					ran = true
					return nil, injected
				}
				return runIP(ctx, args...)
			}
			_, err := up(context.Background(), p, DefaultServers, ip)
			if !ran || !errors.Is(err, injected) {
				t.Fatalf("up with %q failing: %v; want the injected failure", failAt, err)
			}
			if left := labNamespaces(t, p); len(left) != 0 {
				t.Fatalf("up failed half-way and left %v", left)
			}
		})
	}
}

// A cancelled context stops Up and still leaves nothing behind.
func TestUpCancelled(t *testing.T) {
	p := newPrefix(t)
	ctx, cancel := context.WithCancel(context.Background())
	var n int
	ip := func(c context.Context, args ...string) ([]byte, error) {
		if n++; n == 6 {
			cancel()
		}
		return runIP(c, args...)
	}
	if _, err := up(ctx, p, DefaultServers, ip); !errors.Is(err, context.Canceled) {
		t.Fatalf("up with a cancelled context: %v; want context.Canceled", err)
	}
	if left := labNamespaces(t, p); len(left) != 0 {
		t.Fatalf("cancelled up left %v", left)
	}
}

// A lab of more servers: each at its address, reachable from the client;
// Status finds them all; Up with fewer refuses it; Down removes it all.
func TestUpServers(t *testing.T) {
	nstest.NeedTool(t, "ping", "iputils-ping")
	p := newPrefix(t)
	ctx := context.Background()
	for _, n := range []int{0, 1, MaxServers + 1} {
		if _, err := UpServers(ctx, p, n); err == nil {
			t.Errorf("UpServers(%d): no error", n)
		}
	}
	l, err := UpServers(ctx, p, 4)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{p + "-a", p + "-b", p + "-c", p + "-client", p + "-d", p + "-sw"}; !slices.Equal(labNamespaces(t, p), want) {
		t.Fatalf("ip netns list after UpServers(4): %v; want %v", labNamespaces(t, p), want)
	}
	st, err := Status(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.ServerNames(); !slices.Equal(got, []string{"a", "b", "c", "d"}) {
		t.Fatalf("Status finds servers %v", got)
	}
	for i, h := range st.Servers {
		if want := fmt.Sprintf("192.0.2.%d/24", i+1); h.Addr.String() != want || len(h.MAC) == 0 || h.MAC.String() != l.Servers[i].MAC.String() {
			t.Errorf("server %s: %v %v, want %s and its MAC", h.Role, h.Addr, h.MAC, want)
		}
		if out, err := exec.Command("ip", "netns", "exec", l.Client.Namespace, "ping", "-c1", "-W1", h.Addr.Addr().String()).CombinedOutput(); err != nil {
			t.Errorf("ping %s from the client: %v\n%s", h.Role, err, out)
		}
	}
	if d, ok := st.Server("d"); !ok || d.Namespace != p+"-d" {
		t.Errorf("Server(d) = %+v, %v", d, ok)
	}
	if _, err := Up(ctx, p); !errors.Is(err, ErrPartial) {
		t.Errorf("Up (2 servers) over a lab of 4: %v, want ErrPartial", err)
	}
	if _, err := UpServers(ctx, p, 4); !errors.Is(err, ErrExists) {
		t.Errorf("UpServers(4) again: %v, want ErrExists", err)
	}
	if err := Down(ctx, p); err != nil {
		t.Fatal(err)
	}
	if left := labNamespaces(t, p); len(left) != 0 {
		t.Fatalf("left after Down: %v", left)
	}
}
