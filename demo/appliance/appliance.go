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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockshift/sockshift/demo/capture"
	"github.com/sockshift/sockshift/demo/client"
	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/internal/procgroup"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/labview"
	"github.com/sockshift/sockshift/web"
)

// Config is what `sockshift demo` takes.
type Config struct {
	Listen   string // console address; default 127.0.0.1:8080
	Prefix   string // lab prefix; default "ss"
	NoClient bool   // no built-in demo client
	Token    string // needed when Listen is not loopback
	// Servers is how many servers the lab has (a, b, c, ...); default
	// lab.DefaultServers.
	Servers int
	Exe     string // the sockshift binary for child processes; default this one
	RunDir  string // control sockets and the key; default /run/sockshift/<prefix>
	// BreakHold is how long a hand-off broken on purpose stays broken
	// before the console puts it right; default DefaultBreakHold.
	BreakHold time.Duration
	Log       *log.Logger
	// Ready, if set, is called once the console serves.
	Ready func(addr net.Addr)
}

// ringFrames is how many of the client's recent frames are kept: several
// seconds of the demo's clients (the stream client sends many small
// segments), about 40 MB.
const ringFrames = 1 << 18

// Appliance is a running demo. It implements web.Lab, web.Classroom and
// web.Recorder.
type Appliance struct {
	cfg     Config
	cluster *cluster.Cluster
	console *web.Server
	probe   *probe

	statsMu sync.Mutex
	stats   map[string]client.Stats

	// The client's wire: recent frames, and payload bytes each way.
	ring     *capture.Ring
	sniffer  *capture.Sniffer
	up, down atomic.Uint64

	recMu  sync.Mutex
	latest *recording
	recID  int
	last   *lastHandOff

	// stepMu guards step, the running step-mode hand-off, and steps, the
	// frames copied around its steps.
	stepMu sync.Mutex
	step   *labview.StepRun
	steps  stepCapture

	// The built-in client processes, paused during step mode.
	cliMu      sync.Mutex
	cliPaused  chan struct{} // closed on resume; nil when running
	cliStop    map[string]context.CancelFunc
	cliRunning int
}

var (
	_ web.Classroom = (*Appliance)(nil)
	_ web.Recorder  = (*Appliance)(nil)
)

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
	if cfg.BreakHold <= 0 {
		cfg.BreakHold = DefaultBreakHold
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

	c, err := cluster.Start(ctx, cluster.Config{Prefix: cfg.Prefix, Servers: cfg.Servers, Exe: cfg.Exe, RunDir: cfg.RunDir, Restart: true, Log: cfg.Log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer func() {
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	a := &Appliance{cfg: cfg, cluster: c, stats: map[string]client.Stats{}, cliStop: map[string]context.CancelFunc{}, ring: capture.NewRing(&capture.RingConfig{MaxFrames: ringFrames})}
	if a.console, err = web.New(web.Config{Lab: a, Listen: cfg.Listen, Token: cfg.Token}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	a.startCapture()
	defer func() {
		if a.sniffer != nil {
			a.sniffer.Close()
		}
	}()
	a.probe = newProbe(func(ctx context.Context) (net.Conn, error) {
		return c.Dial(ctx, "tcp", net.JoinHostPort(lab.VIP.String(), "7"))
	})
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.publishSamples(ctx)
	}()
	if !cfg.NoClient {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.probe.run(ctx)
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.runChatBots(ctx)
		}()
		for _, mode := range []string{client.Ping, client.Stream} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.runClient(ctx, mode)
			}()
		}
	}
	if unwrite, err := writeConsoleFile(cfg.Prefix, ln.Addr().String()); err != nil {
		cfg.Log.Printf("%v; `sockshift handoff` needs --console %s", err, ln.Addr())
	} else {
		defer unwrite()
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
		a.cliMu.Lock()
		paused := a.cliPaused
		a.cliMu.Unlock()
		if paused != nil {
			select {
			case <-ctx.Done():
				return
			case <-paused:
			}
			continue
		}
		pctx, stop := context.WithCancel(ctx)
		a.cliMu.Lock()
		if a.cliPaused != nil { // paused meanwhile
			a.cliMu.Unlock()
			stop()
			continue
		}
		a.cliStop[mode] = stop
		a.cliRunning++
		a.cliMu.Unlock()
		a.runClientOnce(pctx, mode)
		stop()
		a.cliMu.Lock()
		delete(a.cliStop, mode)
		a.cliRunning--
		a.cliMu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// pauseClients stops the built-in client processes until resumeClients.
// A step-mode hand-off may wait minutes between phases, and those clients
// give up on a connection after 10 s without an answer: closing it while
// it is frozen would make the hand-off roll back. They end before it
// starts, and the console's own ping client moves alone.
func (a *Appliance) pauseClients() {
	a.cliMu.Lock()
	if a.cliPaused == nil {
		a.cliPaused = make(chan struct{})
	}
	for _, stop := range a.cliStop {
		stop()
	}
	a.cliMu.Unlock()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		a.cliMu.Lock()
		n := a.cliRunning
		a.cliMu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Let the servers see the connections close.
	time.Sleep(200 * time.Millisecond)
}

func (a *Appliance) resumeClients() {
	a.cliMu.Lock()
	if a.cliPaused != nil {
		close(a.cliPaused)
		a.cliPaused = nil
	}
	a.cliMu.Unlock()
}

func (a *Appliance) runClientOnce(ctx context.Context, mode string) {
	args := []string{"netns", "exec", a.cluster.Lab.Client.Namespace, a.cfg.Exe, "client", "--json",
		"--addr", net.JoinHostPort(lab.VIP.String(), "7"), "--mode", mode, "--stall", "10s"}
	if mode == client.Stream {
		args = append(args, "--rate", "262144")
	} else {
		args = append(args, "--interval", "50ms")
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	procgroup.Own(cmd)
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
	defer cmd.Wait()
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
}

func clientStats(st client.Stats) *web.ClientStats {
	return &web.ClientStats{Mode: st.Mode, Bytes: st.Bytes, Errors: st.Errors, LastRTTus: st.LastRTTus, WorstGapUS: st.WorstGapUS}
}

// State implements web.Lab.
func (a *Appliance) State(ctx context.Context) (web.State, error) {
	st := web.State{VIP: lab.VIP.String()}
	st.Features.BreakHoldMS = a.cfg.BreakHold.Milliseconds()
	run := a.stepping()
	addrs := map[string]string{}
	for _, name := range a.cluster.Servers() {
		h, _ := a.cluster.Host(name)
		n := web.Node{Name: name, Address: h.Addr.Addr().String(), MAC: h.MAC.String(), Namespace: h.Namespace, Interface: h.Interface}
		ns, err := a.cluster.Control(name).State(ctx)
		if err == nil {
			n.Up, n.HoldsVIP, n.Connections, n.Recovered = true, ns.HoldsVIP, len(ns.Connections), ns.Recovered
			if ns.HoldsVIP {
				st.Holder = name
			}
			labview.AddServices(&st, name, ns.Services)
			for _, sv := range ns.Services {
				addrs[sv.Name] = sv.Address
			}
			st.Connections = append(st.Connections, labview.Connections(name, ns.Connections)...)
			if run != nil && run.From == name {
				st.Step = run.State(ns.Step)
			}
		}
		st.Nodes = append(st.Nodes, n)
	}
	if run != nil && st.Step == nil {
		st.Step = run.State(nil)
	}
	for _, sv := range st.Services {
		if sv.Holder == "" {
			st.Unheld = append(st.Unheld, fmt.Sprintf("no server holds %s's address %s now: a server died mid-hand-off, and the one that last held it takes it back on its own", sv.Name, sv.Address))
		}
	}
	for i := range st.Connections {
		a.lastHandOffOf(&st.Connections[i], addrs)
	}
	cl := a.cluster.Lab.Client
	st.ClientHost = &web.ClientHost{Address: cl.Addr.Addr().String(), MAC: cl.MAC.String(), Namespace: cl.Namespace, Interface: cl.Interface}
	st.ClientHost.ARP, st.ClientHost.ARPMAC = a.clientARP(ctx)
	a.statsMu.Lock()
	if cs, ok := a.stats[client.Ping]; ok {
		st.Client = clientStats(cs)
	}
	a.statsMu.Unlock()
	return st, nil
}
