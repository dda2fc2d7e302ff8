package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// DefaultPrefix names the namespaces of the default lab (ss-sw, ss-client,
// ss-a, ss-b).
const DefaultPrefix = "ss"

// DefaultServers is how many servers a lab has unless told; MaxServers the
// most it may have (a to f, at 192.0.2.1 to 192.0.2.6).
const (
	DefaultServers = 2
	MaxServers     = 6
)

// VIP is the service address that moves between the servers, 192.0.2.100.
// Whichever server holds it assigns it (as a /32); the lab never does.
// Treat it as a constant.
var VIP = netip.MustParseAddr("192.0.2.100")

// ChatVIP is the chat service's own address, 192.0.2.101, so that chat can
// be handed off alone; echo keeps VIP. Treat it as a constant.
var ChatVIP = netip.MustParseAddr("192.0.2.101")

var (
	// ErrExists is wrapped by Up when a complete lab with the prefix is
	// already up; Up returns that lab with it.
	ErrExists = errors.New("lab already exists")
	// ErrNotUp is wrapped by Status when the lab is not (completely) up.
	ErrNotUp = errors.New("lab is not up")
	// ErrPartial is wrapped by Up when part of a lab with the prefix exists;
	// the error says to run `sockshift lab down --prefix P` first.
	ErrPartial = errors.New("lab partly exists")
)

// A Host is one of the lab's hosts: a namespace with one interface on the
// segment.
type Host struct {
	Role      string           // "client", or a server's name: "a", "b", ...
	Namespace string           // e.g. "ss-a"
	Interface string           // "eth0"
	Addr      netip.Prefix     // e.g. 192.0.2.1/24
	MAC       net.HardwareAddr // read from the namespace
}

// A Lab is a lab that is up.
type Lab struct {
	Prefix  string
	Switch  string // the namespace holding the bridge
	Client  Host
	Servers []Host // a, b, ... in order
}

// Hosts returns the client and the servers, in that order.
func (l *Lab) Hosts() []Host { return append([]Host{l.Client}, l.Servers...) }

// Server returns the server named role ("a", "b", ...).
func (l *Lab) Server(role string) (Host, bool) {
	i := slices.IndexFunc(l.Servers, func(h Host) bool { return h.Role == role })
	if i < 0 {
		return Host{}, false
	}
	return l.Servers[i], true
}

// ServerNames lists the servers' names, in order.
func (l *Lab) ServerNames() []string {
	var out []string
	for _, h := range l.Servers {
		out = append(out, h.Role)
	}
	return out
}

// serverName is the name of the lab's i-th server (from 0): a, b, ...
func serverName(i int) string { return string(rune('a' + i)) }

const (
	bridge = "br0"
	hostIf = "eth0"
)

// layout is the lab for prefix with n servers, without MACs.
func layout(prefix string, n int) *Lab {
	host := func(role string, last byte) Host {
		return Host{
			Role:      role,
			Namespace: prefix + "-" + role,
			Interface: hostIf,
			Addr:      netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, last}), 24),
		}
	}
	l := &Lab{
		Prefix: prefix,
		Switch: prefix + "-sw",
		Client: host("client", 10),
	}
	for i := range n {
		l.Servers = append(l.Servers, host(serverName(i), byte(i+1)))
	}
	return l
}

// namespaces lists the lab's namespaces, the switch first.
func (l *Lab) namespaces() []string {
	out := []string{l.Switch}
	for _, h := range l.Hosts() {
		out = append(out, h.Namespace)
	}
	return out
}

// ValidateServers checks a number of servers.
func ValidateServers(n int) error {
	if n < 2 || n > MaxServers {
		return fmt.Errorf("a lab has 2 to %d servers, not %d", MaxServers, n)
	}
	return nil
}

// ValidatePrefix checks that p can prefix the lab's namespace names: 1 to 8
// characters of a-z, 0-9 and '-', not starting with '-' (ip would take it
// for an option).
func ValidatePrefix(p string) error {
	switch {
	case p == "":
		return errors.New("lab prefix is empty")
	case len(p) > 8:
		return fmt.Errorf("lab prefix %q is longer than 8 characters", p)
	case p[0] == '-':
		return fmt.Errorf("lab prefix %q starts with '-'", p)
	}
	for _, c := range p {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("lab prefix %q has %q; use only a-z, 0-9 and '-'", p, c)
		}
	}
	return nil
}

// Up builds the lab with the given prefix and returns it.
//
// If a complete lab with this prefix is already up, Up returns it with an
// error wrapping ErrExists. If only part of one exists, Up changes nothing
// and returns an error (wrapping ErrPartial) saying to run
// `sockshift lab down --prefix P`. If a step fails, Up removes every
// namespace it made before returning the error.
func Up(ctx context.Context, prefix string) (*Lab, error) {
	return up(ctx, prefix, DefaultServers, runIP)
}

// UpServers is Up with n servers (2 to MaxServers): a, b, c, ... at
// 192.0.2.1, 192.0.2.2, 192.0.2.3, ...
func UpServers(ctx context.Context, prefix string, n int) (*Lab, error) {
	return up(ctx, prefix, n, runIP)
}

func up(ctx context.Context, prefix string, n int, ip ipFunc) (*Lab, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ValidateServers(n); err != nil {
		return nil, err
	}
	if err := CheckPrerequisites(); err != nil {
		return nil, err
	}
	l := layout(prefix, n)
	if others, err := existing(ctx, ip, layout(prefix, MaxServers)); err == nil {
		// A lab of the prefix with more servers is still that lab.
		if extra := len(others) - len(l.namespaces()); extra > 0 {
			return nil, fmt.Errorf("lab %s is up with more servers (namespaces %s); run `sockshift lab down --prefix %s` first: %w",
				prefix, strings.Join(others, ", "), prefix, ErrPartial)
		}
	}
	present, err := existing(ctx, ip, l)
	if err != nil {
		return nil, fmt.Errorf("lab: up %s: %w", prefix, err)
	}
	switch {
	case len(present) == len(l.namespaces()):
		got, err := inspect(ctx, ip, l)
		if err != nil {
			return nil, fmt.Errorf("lab %s is only partly set up (%v); run `sockshift lab down --prefix %s` to remove it, then try again: %w",
				prefix, err, prefix, ErrPartial)
		}
		return got, fmt.Errorf("lab %s is already up: %w", prefix, ErrExists)
	case len(present) > 0:
		return nil, fmt.Errorf("lab %s is only partly set up (namespaces %s exist, %s missing); run `sockshift lab down --prefix %s` to remove it, then try again: %w",
			prefix, strings.Join(present, ", "), strings.Join(missing(l, present), ", "), prefix, ErrPartial)
	}

	var made []string
	if err := build(ctx, ip, l, &made); err != nil {
		// The caller's context may be what failed; cleaning up must not.
		cctx := context.WithoutCancel(ctx)
		for _, ns := range slices.Backward(made) {
			if _, derr := ip(cctx, "netns", "del", ns); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleaning up: %w", derr))
			}
		}
		return nil, fmt.Errorf("lab: up %s: %w", prefix, err)
	}
	got, err := status(ctx, ip, l)
	if err != nil {
		return nil, fmt.Errorf("lab: up %s: built, but: %w", prefix, err)
	}
	return got, nil
}

// build makes the lab's namespaces and links, recording in made each
// namespace it created.
func build(ctx context.Context, ip ipFunc, l *Lab, made *[]string) error {
	for _, ns := range l.namespaces() {
		if _, err := ip(ctx, "netns", "add", ns); err != nil {
			return err
		}
		*made = append(*made, ns)
		if _, err := ip(ctx, "-n", ns, "link", "set", "dev", "lo", "up"); err != nil {
			return err
		}
		// Before any lab interface exists, so that "default" covers them
		// all: no IPv6 means no router solicitations or MLD in captures.
		// -e: a kernel without IPv6 has nothing to disable.
		if _, err := ip(ctx, "netns", "exec", ns, "sysctl", "-q", "-e", "-w",
			"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"); err != nil {
			return err
		}
	}
	// STP off: ports forward at once, and the segment has no loops.
	if _, err := ip(ctx, "-n", l.Switch, "link", "add", "name", bridge, "type", "bridge", "stp_state", "0"); err != nil {
		return err
	}
	if _, err := ip(ctx, "-n", l.Switch, "link", "set", "dev", bridge, "up"); err != nil {
		return err
	}
	if err := sysctl(ctx, ip, l.Switch, true, switchSettings); err != nil {
		return err
	}
	for _, h := range l.Hosts() {
		// The pair is born with one end in each namespace, so it never
		// appears in the host's namespace. The explicit "name" and "dev"
		// matter: ip reads a bare "a" as "address" and "b" as "broadcast".
		steps := [][]string{
			{"-n", l.Switch, "link", "add", "name", h.Role, "type", "veth", "peer", "name", h.Interface, "netns", h.Namespace},
			{"-n", l.Switch, "link", "set", "dev", h.Role, "master", bridge, "up"},
			{"-n", h.Namespace, "addr", "add", h.Addr.String(), "dev", h.Interface},
		}
		for _, s := range steps {
			if _, err := ip(ctx, s...); err != nil {
				return err
			}
		}
		// Sealed before the interface comes up, so it never speaks with
		// the host's settings.
		if err := seal(ctx, ip, h); err != nil {
			return err
		}
		if _, err := ip(ctx, "-n", h.Namespace, "link", "set", "dev", h.Interface, "up"); err != nil {
			return err
		}
	}
	return nil
}

// Down removes every namespace of the lab, and with them its links. Parts
// already missing are fine; Down of a lab that is not up does nothing.
// Processes still running inside the namespaces are not stopped; they lose
// their network.
func Down(ctx context.Context, prefix string) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	if err := CheckPrerequisites(); err != nil {
		return err
	}
	l := layout(prefix, MaxServers) // whatever number it was built with
	present, err := existing(ctx, runIP, l)
	if err != nil {
		return fmt.Errorf("lab: down %s: %w", prefix, err)
	}
	var errs []error
	for _, ns := range present {
		if _, err := runIP(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Someone else may have removed a namespace meanwhile; only what is
		// still there is a failure.
		if left, lerr := existing(ctx, runIP, l); lerr != nil || len(left) > 0 {
			return fmt.Errorf("lab: down %s: %w", prefix, errors.Join(errs...))
		}
	}
	return nil
}

// Status returns the lab with the given prefix, MACs read from its
// namespaces, if it is completely up; otherwise an error wrapping ErrNotUp
// that says what is missing.
func Status(ctx context.Context, prefix string) (*Lab, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := CheckPrerequisites(); err != nil {
		return nil, err
	}
	n, err := servers(ctx, runIP, prefix)
	if err != nil {
		return nil, err
	}
	return status(ctx, runIP, layout(prefix, n))
}

// servers counts the servers of the lab with prefix from its namespaces:
// those of a, b, ... that exist in a row (at least DefaultServers, so that
// a lab that is not up reports what is missing).
func servers(ctx context.Context, ip ipFunc, prefix string) (int, error) {
	present, err := existing(ctx, ip, layout(prefix, MaxServers))
	if err != nil {
		return 0, fmt.Errorf("lab %s: %w", prefix, err)
	}
	n := 0
	for n < MaxServers && slices.Contains(present, prefix+"-"+serverName(n)) {
		n++
	}
	return max(n, DefaultServers), nil
}

func status(ctx context.Context, ip ipFunc, l *Lab) (*Lab, error) {
	got, err := inspect(ctx, ip, l)
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", l.Prefix, err)
	}
	return got, nil
}

// inspect reads the lab from its namespaces; its errors wrap ErrNotUp
// unless the lab could not be read at all.
func inspect(ctx context.Context, ip ipFunc, l *Lab) (*Lab, error) {
	present, err := existing(ctx, ip, l)
	if err != nil {
		return nil, err
	}
	if len(present) == 0 {
		return nil, fmt.Errorf("none of its namespaces exist: %w", ErrNotUp)
	}
	if m := missing(l, present); len(m) > 0 {
		return nil, fmt.Errorf("namespaces %s missing: %w", strings.Join(m, ", "), ErrNotUp)
	}

	out, err := ip(ctx, "-j", "-n", l.Switch, "link", "show", "master", bridge)
	if err != nil {
		return nil, fmt.Errorf("bridge %s in %s: %w: %w", bridge, l.Switch, err, ErrNotUp)
	}
	var ports []ipLink
	if err := json.Unmarshal(out, &ports); err != nil {
		return nil, fmt.Errorf("parsing ip -j link show: %w", err)
	}
	got := *l
	got.Servers = slices.Clone(l.Servers)
	hosts := []*Host{&got.Client}
	for i := range got.Servers {
		hosts = append(hosts, &got.Servers[i])
	}
	for _, h := range hosts {
		if !slices.ContainsFunc(ports, func(p ipLink) bool { return p.Name == h.Role }) {
			return nil, fmt.Errorf("port %s missing from %s in %s: %w", h.Role, bridge, l.Switch, ErrNotUp)
		}
		mac, err := hostMAC(ctx, ip, h)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", err, ErrNotUp)
		}
		h.MAC = mac
	}
	return &got, nil
}

// ipLink is the part of `ip -j addr show` / `ip -j link show` used here.
type ipLink struct {
	Name     string       `json:"ifname"`
	MAC      string       `json:"address"`
	AddrInfo []ipAddrInfo `json:"addr_info"`
}

type ipAddrInfo struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	PrefixLen int    `json:"prefixlen"`
}

// hostMAC reads the host's interface and checks it carries its address.
func hostMAC(ctx context.Context, ip ipFunc, h *Host) (net.HardwareAddr, error) {
	out, err := ip(ctx, "-j", "-n", h.Namespace, "addr", "show", "dev", h.Interface)
	if err != nil {
		return nil, err
	}
	var links []ipLink
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return nil, fmt.Errorf("%s %s: unexpected ip -j addr show output %q", h.Namespace, h.Interface, out)
	}
	found := slices.ContainsFunc(links[0].AddrInfo, func(a ipAddrInfo) bool {
		return a.Family == "inet" && a.Local == h.Addr.Addr().String() && a.PrefixLen == h.Addr.Bits()
	})
	if !found {
		return nil, fmt.Errorf("%s %s lacks %v", h.Namespace, h.Interface, h.Addr)
	}
	mac, err := net.ParseMAC(links[0].MAC)
	if err != nil {
		return nil, fmt.Errorf("%s %s: hardware address: %w", h.Namespace, h.Interface, err)
	}
	return mac, nil
}

// existing returns the lab's namespaces that exist, in the lab's order.
func existing(ctx context.Context, ip ipFunc, l *Lab) ([]string, error) {
	out, err := ip(ctx, "netns", "list")
	if err != nil {
		return nil, err
	}
	all := map[string]bool{}
	for line := range strings.Lines(string(out)) {
		// "ss-a (id: 3)" or just "ss-a"
		if f := strings.Fields(line); len(f) > 0 {
			all[f[0]] = true
		}
	}
	var present []string
	for _, ns := range l.namespaces() {
		if all[ns] {
			present = append(present, ns)
		}
	}
	return present, nil
}

func missing(l *Lab, present []string) []string {
	var m []string
	for _, ns := range l.namespaces() {
		if !slices.Contains(present, ns) {
			m = append(m, ns)
		}
	}
	return m
}
