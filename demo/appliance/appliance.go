package appliance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sockshift/sockshift/demo/client"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff/wire"
	"github.com/sockshift/sockshift/web"
)

// Config is what `sockshift demo` takes.
type Config struct {
	Listen   string // console address; default 127.0.0.1:8080
	Prefix   string // lab prefix; default "ss"
	NoClient bool   // no built-in demo client
	Token    string // needed when Listen is not loopback
	Exe      string // the sockshift binary for child processes; default this one
	RunDir   string // control sockets and the key; default /run/sockshift/<prefix>
	Log      *log.Logger
	// Ready, if set, is called once the console serves.
	Ready func(addr net.Addr)
}

// server is one server host of the lab and its process.
type server struct {
	host    lab.Host
	peer    lab.Host
	control *node.Client
	hold    bool // start holding the VIP

	mu   sync.Mutex
	proc *exec.Cmd
	up   bool
}

// Appliance is a running demo.
type Appliance struct {
	cfg     Config
	lab     *lab.Lab
	key     string
	servers map[string]*server
	console *web.Server

	statsMu sync.Mutex
	stats   map[string]client.Stats
}

// Run builds the lab and serves the demo until ctx is done, then removes
// everything it made.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = lab.DefaultPrefix
	}
	if cfg.Log == nil {
		cfg.Log = log.New(os.Stderr, "sockshift: ", log.Ltime)
	}
	if cfg.Exe == "" {
		if cfg.Exe, err = os.Executable(); err != nil {
			return fmt.Errorf("demo: find own binary: %w", err)
		}
	}
	if cfg.RunDir == "" {
		cfg.RunDir = filepath.Join("/run/sockshift", cfg.Prefix)
	}
	if err := lab.ValidatePrefix(cfg.Prefix); err != nil {
		return err
	}
	if err := lab.CheckPrerequisites(); err != nil {
		return err
	}
	// The console's port first: a port in use must not leave a lab behind.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("demo: console address %s is not free (%w); pick another with --listen", cfg.Listen, err)
	}
	defer ln.Close()

	l, err := lab.Up(ctx, cfg.Prefix)
	if errors.Is(err, lab.ErrExists) {
		return fmt.Errorf("demo: a lab with prefix %q is already up (another demo running?): stop it, or run `sockshift lab down --prefix %s`, or pick another --lab-prefix", cfg.Prefix, cfg.Prefix)
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if derr := lab.Down(dctx, cfg.Prefix); derr != nil {
			err = errors.Join(err, derr)
		}
		os.RemoveAll(cfg.RunDir)
	}()

	a := &Appliance{cfg: cfg, lab: l, stats: map[string]client.Stats{}}
	if err := os.MkdirAll(cfg.RunDir, 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	a.key = filepath.Join(cfg.RunDir, "key")
	os.Remove(a.key)
	if _, err := wire.GenerateKeyFile(a.key); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	a.servers = map[string]*server{
		"a": {host: l.A, peer: l.B, hold: true},
		"b": {host: l.B, peer: l.A},
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for _, s := range a.servers {
		s.control = node.NewClient(filepath.Join(cfg.RunDir, s.host.Role+".sock"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.supervise(ctx, s)
		}()
	}
	if err := a.waitNodes(ctx); err != nil {
		return err
	}

	if a.console, err = web.New(web.Config{Lab: a, Listen: cfg.Listen, Token: cfg.Token}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if !cfg.NoClient {
		for _, mode := range []string{client.Ping, client.Stream} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.runClient(ctx, mode)
			}()
		}
	}
	cfg.Log.Printf("lab %q up; console on http://%s (Ctrl-C to stop and clean up)", cfg.Prefix, ln.Addr())
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr())
	}
	return a.console.Serve(ctx, ln)
}

// nodeArgs is the command line of a server's process.
func (a *Appliance) nodeArgs(s *server, hold bool) []string {
	args := []string{"netns", "exec", s.host.Namespace, a.cfg.Exe, "node",
		"--name", s.host.Role, "--iface", s.host.Interface, "--addr", s.host.Addr.Addr().String(),
		"--vip", lab.VIP.String(), "--peer", s.peer.Role + "=" + s.peer.Addr.Addr().String(),
		"--key-file", a.key, "--control", s.control.Control}
	if hold {
		args = append(args, "--hold")
	}
	return args
}

// supervise runs a server's process and starts it again when it dies, as
// systemd does on the VMs.
func (a *Appliance) supervise(ctx context.Context, s *server) {
	hold := s.hold
	for ctx.Err() == nil {
		cmd := exec.Command("ip", a.nodeArgs(s, hold)...)
		cmd.Stdout = os.Stderr
		cmd.Stderr = os.Stderr
		// Its own process group, so a Ctrl-C reaches it through us, in order.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			a.cfg.Log.Printf("server %s: %v", s.host.Role, err)
		} else {
			s.mu.Lock()
			s.proc, s.up = cmd, true
			s.mu.Unlock()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if ctx.Err() == nil {
					a.cfg.Log.Printf("server %s exited (%v); starting it again", s.host.Role, err)
				}
			case <-ctx.Done():
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(3 * time.Second):
					cmd.Process.Kill()
					<-done
				}
			}
			s.mu.Lock()
			s.up = false
			s.mu.Unlock()
		}
		// A restarted server takes the VIP back if it is still assigned to it
		// (it held it when it died): the address must not be orphaned.
		hold = a.vipAssigned(s)
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// vipAssigned reports whether the VIP is on the server's interface.
func (a *Appliance) vipAssigned(s *server) bool {
	out, err := exec.Command("ip", "-n", s.host.Namespace, "-br", "addr", "show", "dev", s.host.Interface).Output()
	return err == nil && containsAddr(string(out), lab.VIP)
}

func containsAddr(out string, addr netip.Addr) bool {
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && p.Addr() == addr {
			return true
		}
	}
	return false
}

// waitNodes waits until both servers answer on their control sockets.
func (a *Appliance) waitNodes(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for _, s := range a.servers {
		for {
			c, cancel := context.WithTimeout(ctx, time.Second)
			_, err := s.control.State(c)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("demo: server %s did not come up: %w", s.host.Role, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// runClient runs a built-in demo client in the client's namespace and
// publishes its figures to the console.
func (a *Appliance) runClient(ctx context.Context, mode string) {
	for ctx.Err() == nil {
		args := []string{"netns", "exec", a.lab.Client.Namespace, a.cfg.Exe, "client", "--json",
			"--addr", net.JoinHostPort(lab.VIP.String(), "7"), "--mode", mode}
		if mode == client.Stream {
			args = append(args, "--rate", "262144")
		} else {
			args = append(args, "--interval", "50ms")
		}
		cmd := exec.CommandContext(ctx, "ip", args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		cmd.WaitDelay = 3 * time.Second
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			a.cfg.Log.Printf("demo client: %v", err)
			return
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var st client.Stats
			if json.Unmarshal(sc.Bytes(), &st) != nil {
				continue
			}
			a.statsMu.Lock()
			a.stats[mode] = st
			a.statsMu.Unlock()
			a.console.Publish(web.Event{Type: "client", Data: clientStats(st)})
		}
		cmd.Wait()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func clientStats(st client.Stats) *web.ClientStats {
	return &web.ClientStats{Mode: st.Mode, Bytes: st.Bytes, Errors: st.Errors, LastRTTus: st.LastRTTus, WorstGapUS: st.WorstGapUS}
}

// State implements web.Lab.
func (a *Appliance) State(ctx context.Context) (web.State, error) {
	st := web.State{VIP: lab.VIP.String()}
	for _, name := range []string{"a", "b"} {
		s := a.servers[name]
		n := web.Node{Name: name, Address: s.host.Addr.Addr().String(), MAC: s.host.MAC.String()}
		ns, err := s.control.State(ctx)
		if err == nil {
			n.Up, n.HoldsVIP, n.Connections = true, ns.HoldsVIP, len(ns.Connections)
			if ns.HoldsVIP {
				st.Holder = name
			}
			for _, c := range ns.Connections {
				st.Connections = append(st.Connections, web.Connection{Service: c.Service, Client: c.Client, Node: name, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
			}
		}
		st.Nodes = append(st.Nodes, n)
	}
	a.statsMu.Lock()
	if cs, ok := a.stats[client.Ping]; ok {
		st.Client = clientStats(cs)
	}
	a.statsMu.Unlock()
	return st, nil
}

// HandOff implements web.Lab: the holder of the VIP hands every connection
// to the other server.
func (a *Appliance) HandOff(ctx context.Context, to string) (web.Report, error) {
	st, err := a.State(ctx)
	if err != nil {
		return web.Report{Error: err.Error()}, err
	}
	from := st.Holder
	if from == "" {
		err := errors.New("no server holds the VIP")
		return web.Report{Error: err.Error()}, err
	}
	other := map[string]string{"a": "b", "b": "a"}
	if to == "" {
		to = other[from]
	}
	if to == from {
		err := fmt.Errorf("server %s already holds the VIP", to)
		return web.Report{From: from, To: to, Error: err.Error()}, err
	}
	res, err := a.servers[from].control.HandOff(ctx, to)
	rep := web.Report{OK: res.OK, From: from, To: to, Connections: res.Connections, TotalUS: res.TotalUS, Error: res.Error}
	for _, p := range res.Phases {
		rep.Phases = append(rep.Phases, web.Phase{Name: p.Name, US: p.US})
	}
	if err == nil && !res.OK {
		err = errors.New(res.Error)
	}
	if err != nil {
		if rep.Error == "" {
			rep.Error = err.Error()
		}
		if ns, serr := a.servers[from].control.State(ctx); serr == nil {
			for _, c := range ns.Connections {
				rep.Remaining = append(rep.Remaining, web.Connection{Service: c.Service, Client: c.Client, Node: from, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
			}
		}
	}
	return rep, err
}
