package node

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sockshift/sockshift/demo/chat"
	"github.com/sockshift/sockshift/demo/echo"
	"github.com/sockshift/sockshift/demo/internal/flagfile"
	"github.com/sockshift/sockshift/handoff"
	"github.com/sockshift/sockshift/handoff/wire"
)

// Main is the `sockshift node` program.
type Main struct {
	Name                           string
	Interface                      string
	Addr                           netip.Addr
	VIP                            netip.Addr
	Peers                          map[string]netip.Addr
	KeyFile                        string
	Control                        string // Unix socket path, or host:port for TCP
	Hold                           bool   // take the VIP at start
	EchoPort                       int
	ChatPort                       int
	ChatPing                       time.Duration // chat: silence before a PING; 0 means the default
	ChatMaxClients, ChatMaxMembers int           // chat bounds; 0 means the defaults
	Fault                          string        // test hook: fail hand-offs at this phase
	Timeout                        time.Duration

	Log *log.Logger
}

// ParseFlags fills m from the command line.
func (m *Main) ParseFlags(args []string) error {
	fs := flag.NewFlagSet("sockshift node", flag.ContinueOnError)
	var addr, vipAddr, peers string
	fs.StringVar(&m.Name, "name", "", "this server's name (a, b, ...)")
	fs.StringVar(&m.Interface, "iface", "eth0", "interface that carries the VIP")
	fs.StringVar(&addr, "addr", "", "this server's own IPv4 address (the hand-off channel listens on it)")
	fs.StringVar(&vipAddr, "vip", "192.0.2.100", "the service address that moves")
	fs.StringVar(&peers, "peer", "", "other servers as name=address[,name=address...]")
	fs.StringVar(&m.KeyFile, "key-file", "", "the lab's shared key (hex, mode 0600)")
	fs.StringVar(&m.Control, "control", "", "control API: a Unix socket path, or host:port on this server's own address (TCP needs the control token derived from the key)")
	fs.BoolVar(&m.Hold, "hold", false, "take the VIP at start")
	fs.IntVar(&m.EchoPort, "echo-port", 7, "echo service port on the VIP")
	fs.IntVar(&m.ChatPort, "chat-port", 6667, "chat (IRC) service port on the VIP")
	fs.DurationVar(&m.ChatPing, "chat-ping", 0, "chat: how long a client may be silent before the server PINGs it (default 30s)")
	fs.IntVar(&m.ChatMaxClients, "chat-max-clients", 0, "chat: most clients at once (default 1000)")
	fs.IntVar(&m.ChatMaxMembers, "chat-max-members", 0, "chat: most members of one channel (default 500)")
	fs.StringVar(&m.Fault, "fault", "", "testing only: fail every hand-off at this phase (hang:PHASE blocks there instead)")
	fs.DurationVar(&m.Timeout, "timeout", 5*time.Second, "deadline of one hand-off")
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
	if err := checkControl(m.Control, m.Addr); err != nil {
		return err
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
	es := &echo.Server{}
	cs := chat.New(&chat.Config{PingInterval: m.ChatPing, PingTimeout: 2 * m.ChatPing,
		MaxClients: m.ChatMaxClients, MaxMembers: m.ChatMaxMembers})
	cfg := handoff.Config{
		Name: m.Name, Addr: m.Addr, Interface: m.Interface, VIP: m.VIP, Key: key,
		Services: []handoff.Service{es, cs}, Timeout: m.Timeout, Logf: m.Log.Printf,
	}
	if m.Fault != "" {
		phase, hang := strings.CutPrefix(m.Fault, "hang:")
		cfg.Fault = func(p string) error {
			if p != phase {
				return nil
			}
			if hang {
				m.Log.Printf("--fault %s: hanging until killed", m.Fault)
				select {}
			}
			return errors.New("--fault " + phase)
		}
	}
	n, err := handoff.NewNode(cfg)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	defer n.Close()
	// A node that starts without the VIP makes sure a stale one (left by a
	// crash) does not answer ARP for it.
	if m.Hold {
		err = n.TakeVIP()
	} else {
		err = n.DropVIP()
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}

	// The echo listener takes the port on every address, so it accepts on
	// the VIP whenever the VIP is here.
	echoLn, err := net.Listen("tcp4", ":"+strconv.Itoa(m.EchoPort))
	if err != nil {
		return fmt.Errorf("node: echo port %d: %w", m.EchoPort, err)
	}
	defer echoLn.Close()
	go es.Serve(echoLn)
	defer es.Close()
	chatLn, err := net.Listen("tcp4", ":"+strconv.Itoa(m.ChatPort))
	if err != nil {
		return fmt.Errorf("node: chat port %d: %w", m.ChatPort, err)
	}
	defer chatLn.Close()
	go cs.Serve(chatLn)
	defer cs.Close()

	var chanLn net.Listener
	if chanLn, err = net.Listen("tcp4", n.ChannelAddr()); err != nil {
		return fmt.Errorf("node: hand-off channel %s: %w (is another node running here?)", n.ChannelAddr(), err)
	}
	ctlLn, err := listenControl(m.Control)
	if err != nil {
		chanLn.Close()
		return err
	}
	handler := m.handler(n, es, cs)
	if !isUnixControl(m.Control) {
		handler = requireToken(ControlToken(key), handler)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ctlLn)
	defer srv.Close()

	m.Log.Printf("serving: echo on :%d, chat on :%d, hand-off channel on %s, control on %s", m.EchoPort, m.ChatPort, n.ChannelAddr(), m.Control)
	return n.ServeListener(ctx, chanLn)
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

func (m *Main) handler(n *handoff.Node, es *echo.Server, cs *chat.Server) http.Handler {
	mux := http.NewServeMux()
	st := &stepper{}
	mux.HandleFunc("POST /step", func(w http.ResponseWriter, r *http.Request) {
		var req StepRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + err.Error()})
			return
		}
		phase, ok := st.advance(req.Abort)
		if !ok {
			writeJSON(w, http.StatusConflict, map[string]string{"error": "no hand-off is waiting for a step"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"phase": phase})
	})
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		holds, err := n.HoldsVIP()
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		ns := State{Name: m.Name, Address: m.Addr.String(), MAC: n.HardwareAddr().String(),
			HoldsVIP: holds, Busy: n.Busy(), Step: st.state(), Connections: []Connection{}}
		for _, c := range es.Connections() {
			ns.Connections = append(ns.Connections, Connection{Service: echo.Name, Client: c.Client, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
		}
		for _, c := range cs.Connections() {
			ns.Connections = append(ns.Connections, Connection{Service: chat.Name, Client: c.Client, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
		}
		writeJSON(w, http.StatusOK, ns)
	})
	mux.HandleFunc("POST /handoff", func(w http.ResponseWriter, r *http.Request) {
		var req HandoffRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeJSON(w, http.StatusBadRequest, HandoffResult{Error: "bad JSON: " + err.Error()})
			return
		}
		peer, ok := m.Peers[req.To]
		if !ok {
			writeJSON(w, http.StatusBadRequest, HandoffResult{From: m.Name, Error: fmt.Sprintf("no peer named %q", req.To)})
			return
		}
		opts := &handoff.Options{SkipAnnounce: req.SkipAnnounce, KeepVIP: req.KeepVIP}
		if req.Step {
			opts.Step = st.wait
			defer st.reset()
		}
		rep, err := n.HandOff(r.Context(), peer, opts)
		res := HandoffResult{OK: err == nil, From: m.Name, To: req.To, Connections: rep.Connections, TotalUS: rep.Total.Microseconds()}
		for _, p := range rep.Phases {
			res.Phases = append(res.Phases, Phase{Name: p.Name, US: p.Duration.Microseconds()})
		}
		res.Caught = rep.Caught
		for _, mc := range rep.Moved {
			res.Moved = append(res.Moved, Moved{Client: mc.Client.String(), Before: mc.Before, After: mc.After})
		}
		status := http.StatusOK
		if err != nil {
			res.Error = err.Error()
			var he *handoff.Error
			res.RolledBack = errors.As(err, &he) && he.RolledBack
			status = http.StatusBadGateway
			if errors.Is(err, handoff.ErrBusy) {
				status = http.StatusConflict
			}
		}
		writeJSON(w, status, res)
	})
	mux.HandleFunc("POST /vip", func(w http.ResponseWriter, r *http.Request) {
		var req VIPRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad JSON: " + err.Error()})
			return
		}
		res := VIPResult{}
		if req.CloseConnections {
			res.Closed = es.CloseConnections()
		}
		var err error
		if req.Hold {
			err = n.TakeVIP()
		} else {
			err = n.DropVIP()
		}
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// stepper lets POST /step release a step-mode hand-off one phase at a time.
type stepper struct {
	mu      sync.Mutex
	waiting string
	done    []string
	next    chan bool // true: abort
}

// wait is handoff.Options.Step: it blocks until POST /step.
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
