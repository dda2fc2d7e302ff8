package labtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// LeakyHostSettings are what a host with forwarding on and unusual ARP
// settings (Docker, libvirt, a VPN, a hardened distribution) would hand a
// new namespace: each breaks a lesson if the lab kept it.
var LeakyHostSettings = []string{
	"net.ipv4.ip_forward=1",                // A routes what it no longer holds to B: skip-announce shows no stall
	"net.ipv4.conf.all.arp_notify=1",       // adding the VIP announces it
	"net.ipv4.conf.default.arp_notify=1",   //
	"net.ipv4.conf.all.arp_announce=2",     // B's queries never name the VIP
	"net.ipv4.conf.default.arp_announce=2", //
	"net.ipv4.conf.all.arp_ignore=1",
	"net.ipv4.conf.all.proxy_arp=1",
	"net.ipv4.conf.all.rp_filter=1",
	"net.ipv4.conf.all.accept_local=1",
	"net.ipv4.conf.all.arp_accept=1",
}

// LeakyNeighbour are a host's ARP timers as each new interface would take
// them: a client that re-asks within a second hides a missing announce.
var LeakyNeighbour = map[string]string{
	"base_reachable_time_ms": "500",
	"delay_first_probe_time": "1",
	"ucast_solicit":          "1",
	"retrans_time_ms":        "100",
}

// LeakyHost makes every lab the test builds from now on start as if the
// host's own settings had leaked into it (as new namespaces copy the host's
// IPv4 defaults), without touching the host: an ip wrapper on PATH writes
// LeakyHostSettings into each namespace right after `ip netns add`, and
// LeakyNeighbour onto each interface moved into a namespace right after
// `ip link add ... netns NS`. The lab must undo all of it. The test must not
// be parallel (it sets PATH).
func LeakyHost(t testing.TB) {
	t.Helper()
	dir := t.TempDir()
	if err := WriteLeakyIP(dir); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// WriteLeakyIP writes into dir the ip wrapper LeakyHost puts first on PATH
// (scripts/leaky-host runs a whole command, the test suite say, with it).
func WriteLeakyIP(dir string) error {
	real, err := exec.LookPath("ip")
	if err != nil {
		return fmt.Errorf("ip: %w", err)
	}
	real, _ = filepath.Abs(real)
	var neigh []string
	for k, v := range LeakyNeighbour {
		neigh = append(neigh, `"net.ipv4.neigh.$ifc.`+k+`=`+v+`"`)
	}
	script := `#!/bin/sh
# A host whose settings leak into the lab (written by labtest.WriteLeakyIP).
real=` + real + `
case "$1 $2" in
"netns add")
	"$real" "$@" || exit $?
	exec "$real" netns exec "$3" sysctl -q -w ` + strings.Join(LeakyHostSettings, " ") + `
	;;
esac
case " $* " in
*" link add "*" peer name "*" netns "*)
	"$real" "$@" || exit $?
	ifc= ns= prev= prev2=
	for a in "$@"; do
		[ "$prev2 $prev" = "peer name" ] && ifc=$a
		[ "$prev" = netns ] && ns=$a
		prev2=$prev prev=$a
	done
	exec "$real" netns exec "$ns" sysctl -q -w ` + strings.Join(neigh, " ") + `
	;;
esac
exec "$real" "$@"
`
	return os.WriteFile(filepath.Join(dir, "ip"), []byte(script), 0o755)
}
