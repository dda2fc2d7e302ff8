package appliance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/sockshift/sockshift/demo/client"
	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/lab"
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

// Appliance is a running demo.
type Appliance struct {
	cfg     Config
	cluster *cluster.Cluster
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
	if cfg.Log == nil {
		cfg.Log = log.New(os.Stderr, "sockshift: ", log.Ltime)
	}
	if cfg.Exe == "" {
		if cfg.Exe, err = os.Executable(); err != nil {
			return fmt.Errorf("demo: find own binary: %w", err)
		}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = lab.DefaultPrefix
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

	c, err := cluster.Start(ctx, cluster.Config{Prefix: cfg.Prefix, Exe: cfg.Exe, RunDir: cfg.RunDir, Restart: true, Log: cfg.Log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	a := &Appliance{cfg: cfg, cluster: c, stats: map[string]client.Stats{}}
	if a.console, err = web.New(web.Config{Lab: a, Listen: cfg.Listen, Token: cfg.Token}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
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

// runClient runs a built-in demo client in the client's namespace and
// publishes its figures to the console.
func (a *Appliance) runClient(ctx context.Context, mode string) {
	for ctx.Err() == nil {
		args := []string{"netns", "exec", a.cluster.Lab.Client.Namespace, a.cfg.Exe, "client", "--json",
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
		h, _ := a.cluster.Host(name)
		n := web.Node{Name: name, Address: h.Addr.Addr().String(), MAC: h.MAC.String()}
		ns, err := a.cluster.Control(name).State(ctx)
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
	res, err := a.cluster.HandOff(ctx, from, to)
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
		if ns, serr := a.cluster.Control(from).State(ctx); serr == nil {
			for _, c := range ns.Connections {
				rep.Remaining = append(rep.Remaining, web.Connection{Service: c.Service, Client: c.Client, Node: from, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
			}
		}
	}
	return rep, err
}
