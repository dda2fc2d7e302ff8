package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sockshift/sockshift/handoff/wire"
)

// DefaultPort is the hand-off channel's TCP port on each server's address.
const DefaultPort = 7070

// ErrBusy is returned when a hand-off is asked for while one is running.
var ErrBusy = errors.New("handoff: a hand-off is already running on this node")

// Config describes a node. Name, Addr, Interface, VIP and Key are required.
type Config struct {
	Name      string     // short name shown in reports ("a")
	Addr      netip.Addr // this server's own address; the channel listens here
	Interface string     // where the VIP lives ("eth0")
	VIP       netip.Addr // the service address that moves
	Key       []byte     // the lab's shared key (wire.KeySize bytes)
	Services  []Service

	// ServiceAddrs gives services an address of their own, by name, so
	// that each can be handed off alone; the others live on VIP. Services
	// that share an address move together.
	ServiceAddrs map[string]netip.Addr

	// StateDir is where the node writes down each hand-off's progress
	// before acting on it (a few small files), so that a process killed
	// mid-hand-off is settled when it starts again: see Recover. It must
	// outlive the process (a tmpfs such as /run is enough) and belong to
	// this node alone. Empty keeps nothing: a node killed mid-hand-off
	// may then leave an address on no server.
	StateDir string
	// Grace is how long a target keeps what it rebuilt, frozen and
	// holding no address, when the channel breaks before the decision: a
	// restarted source tells it then whether to commit. 0 means 3 s.
	Grace time.Duration

	Port           uint16        // channel port; 0 means DefaultPort
	Timeout        time.Duration // deadline of one whole hand-off; 0 means 5 s
	QuiesceTimeout time.Duration // how long services may take to pause; 0 means 1 s

	// Logf, if set, receives one line per notable event.
	Logf func(format string, args ...any)
	// Hook, if set, steers every hand-off of this node, as source and as
	// target: tests inject faults with it, a lab breaks hand-offs on
	// purpose. See Hook.
	Hook Hook
}

// Node is one server taking part in hand-offs, as source or as target.
type Node struct {
	cfg Config
	net hostNet

	journal *journal

	mu   sync.Mutex
	busy bool
	// pending are incoming hand-offs rebuilt here and waiting for the
	// source's decision, by ID.
	pending map[uint64]*target
	// recovered says what Recover found and did, for operators.
	recovered   []Recovery
	recoverDone bool
	// forwarding are the catchers of our last hand-off as source, still
	// forwarding stragglers to the target for a grace period. They must
	// stop as soon as an address comes back here, or frames would loop
	// between the hosts.
	forwarding catchers
}

// stopForwarding ends the grace period of our last hand-off's catcher.
func (n *Node) stopForwarding() {
	n.mu.Lock()
	c := n.forwarding
	n.forwarding = nil
	n.mu.Unlock()
	c.stop()
}

func (n *Node) setForwarding(c catchers) {
	n.mu.Lock()
	n.forwarding = c
	n.mu.Unlock()
}

// NewNode checks cfg and opens what a hand-off needs on the critical path
// (the packet socket for gratuitous ARP).
func NewNode(cfg Config) (*Node, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	hn, err := openLinkNet(cfg.Interface)
	if errors.Is(err, os.ErrPermission) {
		return nil, fmt.Errorf("handoff: node %s needs CAP_NET_RAW and CAP_NET_ADMIN (run it as root, or grant them): %w", cfg.Name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("handoff: node %s: %w", cfg.Name, err)
	}
	return newNode(cfg, hn), nil
}

func newNode(cfg Config, hn hostNet) *Node {
	return &Node{cfg: cfg, net: hn, journal: newJournal(cfg.StateDir), pending: map[uint64]*target{}}
}

// check returns cfg with its defaults, or what is wrong with it.
func (cfg Config) check() (Config, error) {
	switch {
	case cfg.Name == "":
		return cfg, errors.New("handoff: config needs a Name")
	case !cfg.Addr.Is4():
		return cfg, fmt.Errorf("handoff: node address %v is not IPv4", cfg.Addr)
	case !cfg.VIP.Is4():
		return cfg, fmt.Errorf("handoff: VIP %v is not IPv4", cfg.VIP)
	case cfg.Interface == "":
		return cfg, errors.New("handoff: config needs an Interface")
	case len(cfg.Key) != wire.KeySize:
		return cfg, fmt.Errorf("handoff: config needs the lab's shared Key of %d bytes (got %d)", wire.KeySize, len(cfg.Key))
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.QuiesceTimeout == 0 {
		cfg.QuiesceTimeout = time.Second
	}
	if cfg.Grace == 0 {
		cfg.Grace = 3 * time.Second
	}
	names := map[string]bool{}
	for _, s := range cfg.Services {
		if names[s.Name()] {
			return cfg, fmt.Errorf("handoff: two services named %q", s.Name())
		}
		names[s.Name()] = true
	}
	for name, a := range cfg.ServiceAddrs {
		if !names[name] {
			return cfg, fmt.Errorf("handoff: ServiceAddrs names %q, which is not a service", name)
		}
		if !a.Is4() || a == cfg.Addr {
			return cfg, fmt.Errorf("handoff: service %s's address %v is not a service address (IPv4, not the node's own)", name, a)
		}
	}
	return cfg, nil
}

// Close releases the node's packet socket. It does not touch the VIP.
func (n *Node) Close() error { return n.net.Close() }

// HardwareAddr is the MAC the node announces the VIP with.
func (n *Node) HardwareAddr() net.HardwareAddr { return n.net.HardwareAddr() }

// ChannelAddr is where the node's hand-off channel listens.
func (n *Node) ChannelAddr() string {
	return net.JoinHostPort(n.cfg.Addr.String(), strconv.Itoa(int(n.cfg.Port)))
}

// AddrOf returns a service's address: its own, or the VIP.
func (n *Node) AddrOf(service string) netip.Addr {
	if a, ok := n.cfg.ServiceAddrs[service]; ok {
		return a
	}
	return n.cfg.VIP
}

// Addrs lists the service addresses, the VIP first, each once.
func (n *Node) Addrs() []netip.Addr {
	out := []netip.Addr{n.cfg.VIP}
	for _, s := range n.cfg.Services {
		if a := n.AddrOf(s.Name()); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// TakeVIP assigns every service address here and announces them (ip addr
// add ADDR/32 dev IFACE, then gratuitous ARP).
func (n *Node) TakeVIP() error { return n.Take(n.Addrs()...) }

// Take assigns the given service addresses here and announces them.
func (n *Node) Take(addrs ...netip.Addr) error {
	n.stopForwarding()
	for _, a := range addrs {
		if err := n.net.Add(a); err != nil {
			return err
		}
		if err := n.net.Announce(a); err != nil {
			return err
		}
	}
	return nil
}

// DropVIP removes every service address from this host, where present.
func (n *Node) DropVIP() error {
	var errs []error
	for _, a := range n.Addrs() {
		errs = append(errs, n.net.Remove(a))
	}
	return errors.Join(errs...)
}

// HoldsVIP reports whether this host has the VIP.
func (n *Node) HoldsVIP() (bool, error) { return n.net.Held(n.cfg.VIP) }

// Holds reports whether this host has a service address.
func (n *Node) Holds(addr netip.Addr) (bool, error) { return n.net.Held(addr) }

// ServiceNames lists the node's services, in the Config's order.
func (n *Node) ServiceNames() []string {
	out := make([]string, len(n.cfg.Services))
	for i, s := range n.cfg.Services {
		out[i] = s.Name()
	}
	return out
}

// Busy reports whether a hand-off is running on this node.
func (n *Node) Busy() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.busy
}

func (n *Node) begin() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.busy {
		return false
	}
	n.busy = true
	return true
}

func (n *Node) end() {
	n.mu.Lock()
	n.busy = false
	n.mu.Unlock()
}

func (n *Node) logf(format string, args ...any) {
	if n.cfg.Logf != nil {
		n.cfg.Logf(format, args...)
	}
}

func (n *Node) service(name string) (Service, bool) {
	for _, s := range n.cfg.Services {
		if s.Name() == name {
			return s, true
		}
	}
	return nil, false
}

// Serve accepts hand-offs from peers on the node's channel address until
// ctx is done.
func (n *Node) Serve(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp4", n.ChannelAddr())
	if err != nil {
		return fmt.Errorf("handoff: listen on %s: %w (is another node running here?)", n.ChannelAddr(), err)
	}
	return n.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened.
func (n *Node) ServeListener(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	if _, err := n.Recover(ctx); err != nil {
		ln.Close()
		return err
	}
	wg.Add(1)
	go func() { defer wg.Done(); n.retryOpen(ctx) }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("handoff: accept on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.serveSession(ctx, c)
		}()
	}
}

// Phase is one step of a hand-off and how long it took.
type Phase struct {
	Name     string
	Duration time.Duration
}

// Report says what a hand-off did.
type Report struct {
	From, To    string // node names
	Connections int    // connections moved (or that would have moved)
	Phases      []Phase
	// Total runs from the freeze on the source to the target's resume.
	Total time.Duration
	// Committed is true once the source passed the point of no return.
	Committed bool
	// Moved describes the first few connections before and after.
	Moved []MovedConn
	// Caught counts client frames that reached the source during the
	// switch and were delivered to the target.
	Caught int
	// Services names the services that moved, and Addrs their addresses.
	Services []string
	Addrs    []netip.Addr
	// Stayed lists the connections that stayed on the source, and why.
	Stayed []StayedConn
	// Closed counts connections that were closing when frozen: they
	// could not move and were closed with their address gone.
	Closed int
}

// Error is a failed hand-off.
type Error struct {
	Phase      Step // where it failed: the step under way
	RolledBack bool // the source took everything back and serves on
	Err        error
}

func (e *Error) Error() string {
	state := "rolled back: connections stay on the source"
	if !e.RolledBack {
		state = "after commit: the target owns the connections"
	}
	return fmt.Sprintf("handoff failed at %s (%s): %v", e.Phase, state, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// phaseClock records consecutive phases into a report.
type phaseClock struct {
	rep  *Report
	last time.Time
}

func newPhaseClock(rep *Report) *phaseClock { return &phaseClock{rep: rep, last: time.Now()} }

func (c *phaseClock) mark(name string) {
	now := time.Now()
	// A phase measured on the target may have been credited ahead of the
	// clock here; never report a negative remainder.
	c.rep.Phases = append(c.rep.Phases, Phase{name, max(0, now.Sub(c.last))})
	c.last = now
}

func (c *phaseClock) add(name string, d time.Duration) {
	c.rep.Phases = append(c.rep.Phases, Phase{name, d})
}
