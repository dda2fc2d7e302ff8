package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockshift/sockshift/demo/internal/flagfile"
	"github.com/sockshift/sockshift/handoff"
	"github.com/sockshift/sockshift/handoff/wire"
)

// Main is the `sockshift node` program.
type Main struct {
	Name      string
	Interface string
	Addr      netip.Addr
	VIP       netip.Addr // echo's address, and the default
	Peers     map[string]netip.Addr
	KeyFile   string
	Control   string       // Unix socket path, or host:port for TCP
	Hold      bool         // take the VIP at start
	HoldOnly  []netip.Addr // take these service addresses at start, drop the others
	// Services names the services to run (see the table in services.go);
	// nil runs the default ones.
	Services []string
	// Addrs and Ports are the services' own addresses (those not on the
	// VIP) and ports, by name; a service missing takes its default.
	Addrs                          map[string]netip.Addr
	Ports                          map[string]int
	ChatPing                       time.Duration // chat: silence before a PING; 0 means the default
	ChatMaxClients, ChatMaxMembers int           // chat bounds; 0 means the defaults
	Fault                          string        // test hook: fail hand-offs at this phase
	Timeout                        time.Duration
	StateDir                       string // the hand-off journal (handoff.Config.StateDir)

	Log *log.Logger
}

// ParseFlags fills m from the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("sockshift node", flag.ContinueOnError)
	var addr, vipAddr, peers, holdOnly, svcList string
	fs.StringVar(&m.Name, "name", "", "this server's name (a, b, ...)")
	fs.StringVar(&m.Interface, "iface", "eth0", "interface that carries the VIP")
	fs.StringVar(&addr, "addr", "", "this server's own IPv4 address (the hand-off channel listens on it)")
	fs.StringVar(&vipAddr, "vip", "192.0.2.100", "the service address that moves (echo's)")
	fs.StringVar(&svcList, "services", strings.Join(defaultServices(), ","), "the services to run, comma-separated (of "+strings.Join(serviceNames(), ", ")+")")
	addrFlags, portFlags := map[string]*string{}, map[string]*int{}
	for _, d := range services {
		if !d.onVIP {
			addrFlags[d.name] = fs.String(d.name+"-vip", d.addr, d.name+"'s own service address, so that "+d.name+" can move alone (the same as --vip: it moves with echo)")
		}
		portFlags[d.name] = fs.Int(d.name+"-port", d.port, d.name+" service port on its address")
	}
	fs.StringVar(&peers, "peer", "", "other servers as name=address[,name=address...]")
	fs.StringVar(&m.KeyFile, "key-file", "", "the lab's shared key (hex, mode 0600)")
	fs.StringVar(&m.Control, "control", "", "control API: a Unix socket path, or host:port on this server's own address (TCP needs the control token derived from the key)")
	fs.BoolVar(&m.Hold, "hold", false, "take every service address at start")
	fs.StringVar(&holdOnly, "hold-only", "", "take only these service addresses at start (comma-separated), as a server restarted after a crash does")
	fs.DurationVar(&m.ChatPing, "chat-ping", 0, "chat: how long a client may be silent before the server PINGs it (default 30s)")
	fs.IntVar(&m.ChatMaxClients, "chat-max-clients", 0, "chat: most clients at once (default 1000)")
	fs.IntVar(&m.ChatMaxMembers, "chat-max-members", 0, "chat: most members of one channel (default 500)")
	fs.StringVar(&m.Fault, "fault", "", "testing only: fail every hand-off at this phase (hang:PHASE blocks there instead)")
	fs.DurationVar(&m.Timeout, "timeout", 5*time.Second, "deadline of one hand-off")
	fs.StringVar(&m.StateDir, "state-dir", "", "where hand-offs are written down, to be settled after a crash (default /run/sockshift/node-NAME)")
	if err := flagfile.Parse(fs, args); err != nil {
		return err
	}
	var err error
	if m.Name == "" || addr == "" || m.KeyFile == "" || m.Control == "" {
		return errors.New("node: --name, --addr, --key-file and --control are required")
	}
	if m.Addr, err = netip.ParseAddr(addr); err != nil {
		return fmt.Errorf("node: --addr: %w", err)
	}
	if m.VIP, err = netip.ParseAddr(vipAddr); err != nil {
		return fmt.Errorf("node: --vip: %w", err)
	}
	if m.Services, err = parseServices(svcList); err != nil {
		return err
	}
	m.Addrs, m.Ports = map[string]netip.Addr{}, map[string]int{}
	for name, a := range addrFlags {
		if m.Addrs[name], err = netip.ParseAddr(*a); err != nil {
			return fmt.Errorf("node: --%s-vip: %w", name, err)
		}
	}
	for name, p := range portFlags {
		if *p <= 0 || *p > 65535 {
			return fmt.Errorf("node: --%s-port %d: not a port", name, *p)
		}
		m.Ports[name] = *p
	}
	for _, a := range strings.Split(holdOnly, ",") {
		if a == "" {
			continue
		}
		ip, err := netip.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("node: --hold-only: %w", err)
		}
		m.HoldOnly = append(m.HoldOnly, ip)
	}
	if err := checkControl(m.Control, m.Addr); err != nil {
		return err
	}
	if m.StateDir == "" {
		m.StateDir = "/run/sockshift/node-" + m.Name
	}
	m.Peers = map[string]netip.Addr{}
	for _, p := range strings.Split(peers, ",") {
		if p == "" {
			continue
		}
		name, a, ok := strings.Cut(p, "=")
		ip, err := netip.ParseAddr(a)
		if !ok || err != nil || name == "" {
			return fmt.Errorf("node: --peer %q: want name=address", p)
		}
		m.Peers[name] = ip
	}
	return nil
}

// Run serves until ctx is done.
func (m *Main) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = log.New(os.Stderr, "node "+m.Name+": ", log.Lmicroseconds)
	}
	key, err := wire.LoadKeyFile(m.KeyFile)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	run, err := m.start()
	if err != nil {
		return err
	}
	cfg := handoff.Config{
		Name: m.Name, Addr: m.Addr, Interface: m.Interface, VIP: m.VIP, Key: key,
		Timeout: m.Timeout, Logf: m.Log.Printf, ServiceAddrs: map[string]netip.Addr{},
		StateDir: m.StateDir,
	}
	for _, r := range run {
		cfg.Services = append(cfg.Services, r.svc)
		if a := r.addr; a != m.VIP {
			cfg.ServiceAddrs[r.def.name] = a
		}
	}
	hk := &nodeHook{log: m.Log}
	hk.fault, hk.hang = m.Fault, false
	if phase, ok := strings.CutPrefix(m.Fault, "hang:"); ok {
		hk.fault, hk.hang = phase, true
	}
	cfg.Hook = hk
	n, err := handoff.NewNode(cfg)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer n.Close()
	// A node that starts without the VIP makes sure a stale one (left by a
	// crash) does not answer ARP for it.
	if m.Hold {
		err = n.TakeVIP()
	} else if err = n.DropVIP(); err == nil && len(m.HoldOnly) > 0 {
		err = n.Take(m.HoldOnly...)
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	// Then what the journal left open is settled with the peer, before any
	// client is served: it may take an address back, or let one go.
	if _, err := n.Recover(ctx); err != nil {
		return fmt.Errorf("node: %w", err)
	}

	// Each service accepts on its own address (whether here or not yet)
	// and on the server's own: a client of one service on another's
	// address would be cut off when that address moves.
	ctx, cancel := context.WithCancel(ctx) // closes the listeners on return
	defer cancel()
	var serving []string
	for _, r := range run {
		for _, addr := range []netip.Addr{r.addr, m.Addr} {
			if err := m.listen(ctx, r, addr); err != nil {
				return err
			}
		}
		defer r.svc.Close()
		serving = append(serving, fmt.Sprintf("%s on %v:%d", r.def.name, r.addr, r.port))
	}

	var chanLn net.Listener
	if chanLn, err = net.Listen("tcp4", n.ChannelAddr()); err != nil {
		return fmt.Errorf("node: hand-off channel %s: %w (is another node running here?)", n.ChannelAddr(), err)
	}
	ctlLn, err := listenControl(m.Control)
	if err != nil {
		chanLn.Close()
		return err
	}
	handler := m.handler(n, run, hk)
	if !isUnixControl(m.Control) {
		handler = requireToken(ControlToken(key), handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ctlLn)
	defer srv.Close()

	m.Log.Printf("serving: %s (and each on %v), hand-off channel on %s, control on %s",
		strings.Join(serving, ", "), m.Addr, n.ChannelAddr(), m.Control)
	return n.ServeListener(ctx, chanLn)
}

// started is a service this node runs, where it runs.
type started struct {
	running
	def  serviceDef
	addr netip.Addr // its service address
	port int
}

// start builds the services m.Services names, in the table's order.
func (m *Main) start() ([]started, error) {
	names := m.Services
	if names == nil {
		names = defaultServices()
	}
	var out []started
	for _, d := range services {
		if !slices.Contains(names, d.name) {
			continue
		}
		s := started{running: d.start(m), def: d, addr: m.VIP, port: d.port}
		if a, ok := m.Addrs[d.name]; ok && !d.onVIP {
			s.addr = a
		}
		if p, ok := m.Ports[d.name]; ok {
			s.port = p
		}
		out = append(out, s)
	}
	if len(out) != len(names) {
		return nil, fmt.Errorf("node: services %v: some are not in the table (%s)", names, strings.Join(serviceNames(), ", "))
	}
	return out, nil
}

// listen serves r on addr: each service accepts on its own address
// (whether here or not yet) and on the server's own, since a client of
// one service on another's address would be cut off when that address
// moves.
func (m *Main) listen(ctx context.Context, r started, addr netip.Addr) error {
	ap := netip.AddrPortFrom(addr, uint16(r.port))
	ln, err := listenAnywhere(ctx, ap)
	if errors.Is(err, syscall.EADDRINUSE) && addr != m.Addr {
		// A previous process of ours that died serving moved-in
		// connections leaves them closing (FIN-WAIT, then TIME-WAIT,
		// up to a minute), and they hold the port against a new
		// listener. The node serves on meanwhile (its channel, its
		// other addresses) and listens here once they are gone.
		m.Log.Printf("%v; listening there once the closing connections of a previous process are gone", err)
		go func() {
			for ctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
				if ln, err := listenAnywhere(ctx, ap); err == nil {
					context.AfterFunc(ctx, func() { ln.Close() })
					m.Log.Printf("listening on %v", ap)
					r.svc.Serve(ln)
					return
				}
			}
		}()
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	go r.svc.Serve(ln)
	return nil
}

func listenControl(where string) (net.Listener, error) {
	if isUnixControl(where) {
		os.Remove(where) // a stale socket from a killed node
		ln, err := net.Listen("unix", where)
		if err != nil {
			return nil, fmt.Errorf("node: control socket %s: %w", where, err)
		}
		os.Chmod(where, 0o600)
		return ln, nil
	}
	ln, err := net.Listen("tcp", where)
	if err != nil {
		return nil, fmt.Errorf("node: control address %s: %w", where, err)
	}
	return ln, nil
}

// stepper lets POST /step release a step-mode hand-off one phase at a time.
type stepper struct {
	mu      sync.Mutex
	waiting string
	done    []string
	next    chan bool // true: abort
}

// wait blocks a paced hand-off's step until POST /step.
func (s *stepper) wait(ctx context.Context, phase string) error {
	next := make(chan bool, 1)
	s.mu.Lock()
	s.waiting, s.next = phase, next
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.done = append(s.done, phase)
		s.waiting, s.next = "", nil
		s.mu.Unlock()
	}()
	select {
	case abort := <-next:
		if abort {
			return errors.New("stopped by the operator")
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the step %q: %w", phase, ctx.Err())
	}
}

// committed reports whether the waiting step comes after the commit.
func (s *stepper) committed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting == "resume"
}

// advance releases the waiting phase, if any.
func (s *stepper) advance(abort bool) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next == nil {
		return "", false
	}
	s.next <- abort
	// Waiting is cleared now, not when the phase ends: a State read in
	// between must not offer the released phase for another step.
	phase := s.waiting
	s.waiting, s.next = "", nil
	return phase, true
}

func (s *stepper) state() *StepState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiting == "" && len(s.done) == 0 {
		return nil
	}
	return &StepState{Waiting: s.waiting, Done: append([]string{}, s.done...)}
}

func (s *stepper) reset() {
	s.mu.Lock()
	s.waiting, s.done, s.next = "", nil, nil
	s.mu.Unlock()
}

// nodeHook is the node's handoff.Hook: --fault, and the break-it toggle
// that POST /break arms for the next hand-off this node takes.
type nodeHook struct {
	log   *log.Logger
	fault string // fail at this step
	hang  bool   // block there instead

	mu           sync.Mutex
	armed        bool // POST /break: skip the next incoming announce
	skipAnnounce bool // armed for the hand-off under way
}

func (h *nodeHook) arm(skipAnnounce bool) {
	h.mu.Lock()
	h.armed = skipAnnounce
	h.mu.Unlock()
}

func (h *nodeHook) At(ctx context.Context, step handoff.Step) error {
	if step == "target-prepare" {
		// What POST /break armed applies to this hand-off, and only to it.
		h.mu.Lock()
		h.skipAnnounce, h.armed = h.armed, false
		h.mu.Unlock()
	}
	if h.fault == "" || string(step) != h.fault {
		return nil
	}
	if h.hang {
		h.log.Printf("--fault hang:%s: hanging until killed", step)
		select {}
	}
	return errors.New("--fault " + string(step))
}

func (h *nodeHook) Skip(step handoff.Step) bool {
	if step != "announce" {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	skip := h.skipAnnounce
	h.skipAnnounce = false
	return skip
}

// handOffHook steers one hand-off asked for through POST /handoff: step
// mode and the keep-the-address toggle.
type handOffHook struct {
	step    *stepper // step mode: each step waits for POST /step
	keepVIP bool
}

func (h *handOffHook) At(ctx context.Context, step handoff.Step) error {
	if h.step == nil {
		return nil
	}
	return h.step.wait(ctx, string(step))
}

func (h *handOffHook) Skip(step handoff.Step) bool { return step == handoff.StepRelease && h.keepVIP }
