package lab_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/handoff/nstest"
)

// The lab must behave the same on a host with forwarding on (Docker,
// libvirt, a VPN) and on one with it off. The host's settings are never
// changed here: labtest.LeakyHost writes a leaky host's values into each of
// the lab's namespaces as they are created, before the lab's own setup
// runs, and the lab must set them back.
func TestUpSealsTheLabFromTheHost(t *testing.T) {
	nstest.Privileged(t)
	labtest.LeakyHost(t)

	// The simulation leaks: a namespace made through it forwards.
	probe := nstest.UniqueName("lk")
	nstest.Run(t, "ip", "netns", "add", probe)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", probe).Run() })
	if got := strings.TrimSpace(nstest.Exec(t, probe, "sysctl", "-n", "net.ipv4.ip_forward")); got != "1" {
		t.Fatalf("the leaky host's namespace has ip_forward=%s; the simulation does not leak", got)
	}

	p := labtest.Prefix()
	ctx := context.Background()
	l, err := lab.Up(ctx, p)
	t.Cleanup(func() {
		if err := lab.Down(context.Background(), p); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range l.Hosts() {
		// The leak reached this interface too (its ARP timers).
		got, err := lab.ReadSettings(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range lab.Settings(h.Interface) {
			if got[s.Key] != s.Value {
				t.Errorf("%s: %s = %q; the lab sets %s", h.Namespace, s.Key, got[s.Key], s.Value)
			}
		}
		for _, k := range []string{"net.ipv4.conf.all.forwarding", "net.ipv4.conf." + h.Interface + ".forwarding"} {
			if v := strings.TrimSpace(nstest.Exec(t, h.Namespace, "sysctl", "-n", k)); v != "0" {
				t.Errorf("%s: %s = %s; want 0", h.Namespace, k, v)
			}
		}
	}
}

// The VM lab's provisioning installs vagrant/sysctl.d/60-sockshift.conf:
// the same settings, with the interface as a glob systemd-sysctl expands.
func TestVMLabSysctlFileMatchesTheLab(t *testing.T) {
	f, err := os.Open("../../vagrant/sysctl.d/60-sockshift.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("not a sysctl line: %q", line)
		}
		got = append(got, strings.TrimSpace(k)+"="+strings.TrimSpace(v))
	}
	var want []string
	for _, s := range lab.Settings("*") {
		want = append(want, s.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("vagrant/sysctl.d/60-sockshift.conf has\n%s\nthe lab sets\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
