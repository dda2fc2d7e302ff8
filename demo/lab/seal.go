package lab

import (
	"context"
	"fmt"
	"strings"
)

// A Setting is one sysctl the lab sets in its hosts' namespaces.
type Setting struct {
	Key   string // e.g. "net.ipv4.conf.eth0.arp_notify"
	Value string
}

func (s Setting) String() string { return s.Key + "=" + s.Value }

// The lab's behaviour must not depend on the machine it runs on, but a
// new namespace is not a clean one: it copies the host's
// net.ipv4.conf.{all,default} (net.core.devconf_inherit_init_net=0, the
// default), net.ipv4.ip_forward among them, and each new interface takes
// its neighbour timers from the host's net.ipv4.neigh.default (the ARP
// table's defaults are shared by every namespace). A host with forwarding
// on (Docker, libvirt, a VPN) made server A, once it had released the VIP,
// route the client's segments to B: "skip the announce" showed no stall.
// So each host namespace sets, for all, default and its interface, the
// kernel's defaults for every setting the lessons rely on.
var (
	// confSettings are IPv4 per-interface settings, under
	// net.ipv4.conf.{all,default,IF}. For most the kernel uses the larger
	// (or the OR) of "all" and the interface's value, so both are set.
	confSettings = []Setting{
		{"forwarding", "0"},          // A must drop what reaches it for a VIP it released, not route it to B
		{"rp_filter", "0"},           // caught frames re-sent to B, and the client, are never filtered by route
		{"arp_ignore", "0"},          // the holder answers ARP for the VIP on eth0
		{"arp_announce", "0"},        // an ARP query from the VIP's holder names the VIP (the classroom explains why B must know the client first)
		{"arp_filter", "0"},          // one interface; replies never depend on routes
		{"arp_accept", "0"},          // a gratuitous ARP updates an existing entry only, as the lessons show it
		{"arp_notify", "0"},          // adding the VIP sends no ARP of its own: only the announce step does
		{"drop_gratuitous_arp", "0"}, // the client must follow the announce
		{"proxy_arp", "0"},           // nobody answers ARP for an address it does not hold
		{"accept_local", "0"},        // a frame claiming a local source is dropped
		{"route_localnet", "0"},
	}
	// neighSettings are the client's (and the servers') ARP timers, under
	// net.ipv4.neigh.IF: how long a silent peer's MAC stays trusted decides
	// when a client whose segments go nowhere asks again.
	neighSettings = []Setting{
		{"base_reachable_time_ms", "30000"},
		{"delay_first_probe_time", "5"},
		{"gc_stale_time", "60"},
		{"retrans_time_ms", "1000"},
		{"ucast_solicit", "3"},
		{"mcast_solicit", "3"},
		{"mcast_resolicit", "0"},
		{"app_solicit", "0"},
		{"locktime", "100"}, // centiseconds
	}
)

// Settings returns the sysctls the lab sets in a host's namespace whose
// interface is iface, in the order they are written: forwarding first
// (writing it resets the interfaces' forwarding), then "all", "default"
// and the interface. With iface "*" they read as a sysctl.d file for
// systemd-sysctl, which expands the glob (vagrant/sysctl.d/60-sockshift.conf).
func Settings(iface string) []Setting {
	out := []Setting{{"net.ipv4.ip_forward", "0"}}
	scopes := []string{"all", "default", iface}
	if iface == "*" {
		scopes = []string{"*"}
	}
	for _, scope := range scopes {
		for _, s := range confSettings {
			out = append(out, Setting{"net.ipv4.conf." + scope + "." + s.Key, s.Value})
		}
	}
	for _, s := range neighSettings {
		out = append(out, Setting{"net.ipv4.neigh." + iface + "." + s.Key, s.Value})
	}
	return out
}

// switchSettings keep the bridge a plain L2 segment even where the host
// loaded br_netfilter (Docker does), which would pass bridged frames
// through the switch namespace's iptables. Absent keys are fine (-e).
var switchSettings = []Setting{
	{"net.ipv4.ip_forward", "0"},
	{"net.bridge.bridge-nf-call-iptables", "0"},
	{"net.bridge.bridge-nf-call-arptables", "0"},
}

// seal writes the lab's settings into h's namespace, once its interface
// exists.
func seal(ctx context.Context, ip ipFunc, h Host) error {
	return sysctl(ctx, ip, h.Namespace, false, Settings(h.Interface))
}

func sysctl(ctx context.Context, ip ipFunc, ns string, optional bool, settings []Setting) error {
	args := []string{"netns", "exec", ns, "sysctl", "-q", "-w"}
	if optional {
		args = append(args, "-e")
	}
	for _, s := range settings {
		args = append(args, s.String())
	}
	if _, err := ip(ctx, args...); err != nil {
		return fmt.Errorf("sealing %s from the host's settings: %w", ns, err)
	}
	return nil
}

// ReadSettings reads back, from h's namespace, the values of the lab's
// settings: what a test compares with Settings.
func ReadSettings(ctx context.Context, h Host) (map[string]string, error) {
	args := []string{"netns", "exec", h.Namespace, "sysctl"}
	for _, s := range Settings(h.Interface) {
		args = append(args, s.Key)
	}
	out, err := runIP(ctx, args...)
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			got[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return got, nil
}
