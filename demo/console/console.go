package console

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/sockshift/sockshift/demo/internal/wait"
	"log"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sockshift/sockshift/demo/internal/flagfile"
	"github.com/sockshift/sockshift/demo/internal/neigh"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/labview"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/web"
)

// Node is one server the console drives.
type Node struct {
	Name    string // "a", "b", ...
	Control string // its control API, host:port (or a Unix socket path)
}

// Main is the `sockshift console` program.
type Main struct {
	Listen       string // console address; default 127.0.0.1:8080
	Token        string // the console's own token, needed when Listen is not loopback
	Nodes        []Node
	VIP          netip.Addr
	ControlToken string // the nodes' control token (node.ControlToken)
	Interface    string // this machine's interface on the lab network, for its ARP entry; "" shows none
	Log          *log.Logger
	// Ready, if set, is called once the console serves.
	Ready func(addr net.Addr)
}

// ParseFlags fills m from the command line and the file named by --config.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("sockshift console", flag.ContinueOnError)
	var nodes, vip, keyFile, tokenFile string
	fs.StringVar(&m.Listen, "listen", "127.0.0.1:8080", "console address (not loopback: needs a token)")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the console's token (default $SOCKSHIFT_TOKEN)")
	fs.StringVar(&nodes, "nodes", "", "the servers' control APIs as name=host:port,name=host:port")
	fs.StringVar(&vip, "vip", "192.0.2.100", "the service address that moves")
	fs.StringVar(&keyFile, "key-file", "", "the lab's shared key, from which the nodes' control token is derived")
	fs.StringVar(&m.Interface, "iface", "", "this machine's interface on the lab network (shows its ARP entry for the VIP)")
	if err := flagfile.Parse(fs, args); err != nil {
		return err
	}
	var err error
	if m.VIP, err = netip.ParseAddr(vip); err != nil {
		return fmt.Errorf("console: --vip: %w", err)
	}
	if m.Nodes, err = parseNodes(nodes); err != nil {
		return err
	}
	m.Token = os.Getenv("SOCKSHIFT_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("console: --token-file: %w", err)
		}
		m.Token = strings.TrimSpace(string(b))
		if m.Token == "" {
			return fmt.Errorf("console: --token-file %s is empty", tokenFile)
		}
	}
	if keyFile != "" {
		if m.ControlToken, err = node.ControlTokenFromKeyFile(keyFile); err != nil {
			return fmt.Errorf("console: --key-file: %w", err)
		}
	}
	return nil
}

// serverName is what a server's name looks like (a, b, ...).
var serverName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

func parseNodes(s string) ([]Node, error) {
	var out []Node
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		name, control, ok := strings.Cut(p, "=")
		if !ok || !serverName.MatchString(name) || control == "" {
			return nil, fmt.Errorf("console: --nodes %q: want a=host:port,b=host:port,...", p)
		}
		if slices.ContainsFunc(out, func(n Node) bool { return n.Name == name }) {
			return nil, fmt.Errorf("console: --nodes: %s given twice", name)
		}
		out = append(out, Node{Name: name, Control: control})
	}
	if len(out) < 2 || len(out) > lab.MaxServers {
		return nil, fmt.Errorf("console: --nodes: want 2 to %d servers, a=host:port,b=host:port,...", lab.MaxServers)
	}
	slices.SortFunc(out, func(x, y Node) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// Run serves the console until ctx is done.
func (m *Main) Run(ctx context.Context) error {
	if m.Log == nil {
		m.Log = log.New(os.Stderr, "console: ", log.Ltime)
	}
	if m.Listen == "" {
		m.Listen = "127.0.0.1:8080"
	}
	l := &Lab{vip: m.VIP, iface: m.Interface, nodes: map[string]*node.Client{}}
	for _, n := range m.Nodes {
		c := node.NewClient(n.Control)
		c.Token = m.ControlToken
		l.nodes[n.Name] = c
		l.order = append(l.order, n.Name)
	}
	srv, err := web.New(web.Config{Lab: l, Listen: m.Listen, Token: m.Token})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	ln, err := net.Listen("tcp", m.Listen)
	if err != nil {
		return fmt.Errorf("console: listen %s: %w", m.Listen, err)
	}
	for _, name := range l.order {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		if _, err := l.nodes[name].State(cctx); err != nil {
			// Not fatal: a server may come up after the console.
			m.Log.Printf("server %s does not answer yet: %v", name, err)
		}
		cancel()
	}
	m.Log.Printf("console on http://%s, driving %v", ln.Addr(), m.Nodes)
	if m.Ready != nil {
		m.Ready(ln.Addr())
	}
	return srv.Serve(ctx, ln)
}

// Lab is the VM lab as the web console sees it: servers reached through
// their control APIs. It implements web.Lab and web.Classroom.
type Lab struct {
	vip   netip.Addr
	iface string
	nodes map[string]*node.Client
	order []string

	mu   sync.Mutex
	step *labview.StepRun // the running step-mode hand-off
}

var _ web.Classroom = (*Lab)(nil)

func (l *Lab) stepping() *labview.StepRun {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.step
}

// State implements web.Lab. A server that does not answer is shown down.
func (l *Lab) State(ctx context.Context) (web.State, error) {
	st := web.State{VIP: l.vip.String(), Connections: []web.Connection{}}
	run := l.stepping()
	for _, name := range l.order {
		n := web.Node{Name: name}
		ns, err := l.nodes[name].State(ctx)
		if err == nil {
			n.Up, n.Address, n.MAC, n.HoldsVIP, n.Connections = true, ns.Address, ns.MAC, ns.HoldsVIP, len(ns.Connections)
			if ns.HoldsVIP {
				st.Holder = name
			}
			st.Connections = append(st.Connections, labview.Connections(name, ns.Connections)...)
			labview.AddServices(&st, name, ns.Services)
			if run != nil && run.From == name {
				st.Step = run.State(ns.Step)
			}
		}
		st.Nodes = append(st.Nodes, n)
	}
	if run != nil && st.Step == nil {
		st.Step = run.State(nil)
	}
	st.ClientHost = l.clientHost(ctx)
	return st, nil
}

// clientHost describes this machine, the lab's client, with its ARP entry
// for the VIP (as `ip neigh` prints it).
func (l *Lab) clientHost(ctx context.Context) *web.ClientHost {
	if l.iface == "" {
		return nil
	}
	ch := &web.ClientHost{Interface: l.iface}
	if ifi, err := net.InterfaceByName(l.iface); err == nil {
		ch.MAC = ifi.HardwareAddr.String()
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				ch.Address = p.Addr().String()
				break
			}
		}
	}
	ch.ARP, ch.ARPMAC = l.arp(ctx)
	return ch
}

// arp is this machine's neighbour entry for the VIP on the lab's
// interface, as `ip -4 neigh show VIP dev IF` prints it, and its MAC.
func (l *Lab) arp(ctx context.Context) (entry, mac string) {
	es, err := neigh.Lookup("", l.vip, l.iface)
	if err != nil || len(es) == 0 {
		return "", ""
	}
	if len(es[0].MAC) > 0 {
		mac = es[0].MAC.String()
	}
	return es[0].WithoutDev(), mac
}

// HandOff implements web.Lab.
func (l *Lab) HandOff(ctx context.Context, to string) (web.Report, error) {
	return l.HandOffWith(ctx, web.HandOffRequest{To: to})
}

// Step implements web.Classroom.
func (l *Lab) Step(ctx context.Context, abort bool) (string, error) {
	run := l.stepping()
	if run == nil {
		return "", errors.New("no hand-off is waiting for a step")
	}
	return l.nodes[run.From].Step(ctx, abort)
}

// HandOffWith implements web.Classroom: the holder of the VIP hands every
// connection to the other server, in step mode or broken on purpose as
// req says; a broken hand-off is put right afterwards.
func (l *Lab) HandOffWith(ctx context.Context, req web.HandOffRequest) (web.Report, error) {
	st, _ := l.State(ctx)
	to, sources, err := labview.PlanHandOff(st, req)
	if err == nil && l.nodes[to] == nil {
		err = fmt.Errorf("%w: no server %q", web.ErrBadRequest, to)
	}
	if err == nil && len(sources) > 1 && (req.Step || req.Break != nil) {
		err = fmt.Errorf("%w: the services are on different servers: step mode and break-it move from one server", web.ErrBadRequest)
	}
	if err != nil {
		return web.Report{To: to, Error: err.Error()}, err
	}
	from := sources[0].From
	nreq := node.HandoffRequest{To: to, Step: req.Step, Services: sources[0].Services}
	if req.Break != nil {
		nreq.KeepVIP = req.Break.KeepVIP
		if err := l.nodes[to].Break(ctx, node.BreakRequest{SkipAnnounce: req.Break.SkipAnnounce}); err != nil {
			return web.Report{From: from, To: to, Error: err.Error()}, err
		}
	}
	if req.Step {
		l.mu.Lock()
		l.step = &labview.StepRun{From: from, To: to, Break: req.Break}
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.step = nil
			l.mu.Unlock()
		}()
	}
	arpBefore, _ := l.arp(ctx)
	start := time.Now()
	res, err := l.nodes[from].HandOffWith(ctx, nreq)
	res, err = labview.HandOffRest(ctx, res, err, sources, func(role string) *node.Client { return l.nodes[role] })
	rep := labview.Report(from, to, req, res, start, time.Now())
	if err == nil && !res.OK {
		err = errors.New(res.Error)
	}
	if err == nil && req.Break != nil {
		wait.Sleep(ctx, breakShow)
		// What the client's neighbour entry says after the break, before
		// the lab is put right: the one fact about the client this console has (it
		// has no capture).
		_, during := l.arp(ctx)
		rep.Note = neighbourNote(from, to, during, st) + l.undoBreak(ctx, from, to, req.Break)
	}
	if err != nil {
		// Nothing moved: the report must not say so.
		rep.Connections, rep.Moved = 0, nil
	}
	rep.ARPBefore = arpBefore
	rep.ARPAfter, _ = l.arp(ctx)
	if err != nil {
		if rep.Error == "" {
			rep.Error = err.Error()
		}
		if ns, serr := l.nodes[from].State(ctx); serr == nil {
			rep.Remaining = labview.Connections(from, ns.Connections)
		}
	}
	return rep, err
}

// breakShow is how long a hand-off broken on purpose stays broken.
const breakShow = 2 * time.Second

// undoBreak puts the lab right after a hand-off broken on purpose, as the
// one-host demo does, and says what happened.
func (l *Lab) undoBreak(ctx context.Context, from, to string, brk *web.Break) string {
	var err error
	var note string
	switch {
	case brk.KeepVIP && brk.SkipAnnounce:
		_, err = l.nodes[to].SetVIP(ctx, node.VIPRequest{Hold: false, CloseConnections: true})
		note = fmt.Sprintf("Server %s kept the address but no longer the sockets: a segment of the client that reaches it draws a reset (RST); see it with tcpdump on the client (this console has no capture). Put right: %s dropped the address again.", from, to)
	case brk.KeepVIP:
		_, err = l.nodes[from].SetVIP(ctx, node.VIPRequest{Hold: false})
		note = fmt.Sprintf("Server %s kept the address while %s announced it: two hosts answered for one address. Put right: %s dropped it.", from, to, from)
	case brk.SkipAnnounce:
		_, err = l.nodes[to].SetVIP(ctx, node.VIPRequest{Hold: true})
		note = fmt.Sprintf("Put right after %v: %s sent the gratuitous ARP it had skipped.", breakShow, to)
	}
	if err != nil {
		note += " (Putting it right failed: " + err.Error() + ")"
	}
	return note
}

// neighbourNote says which server the client's neighbour entry for the
// VIP named, mac, as read on the client.
func neighbourNote(from, to, mac string, st web.State) string {
	if mac == "" {
		return "The client had no neighbour entry for the VIP. "
	}
	for _, n := range st.Nodes {
		if strings.EqualFold(n.MAC, mac) {
			switch n.Name {
			case from:
				return fmt.Sprintf("%v after the hand-off the client's neighbour entry for the VIP still named server %s's MAC (%s): its segments went there. ", breakShow, from, mac)
			case to:
				return fmt.Sprintf("%v after the hand-off the client's neighbour entry for the VIP named server %s's MAC (%s). ", breakShow, to, mac)
			}
		}
	}
	return fmt.Sprintf("%v after the hand-off the client's neighbour entry for the VIP named %s, neither server's MAC. ", breakShow, mac)
}
