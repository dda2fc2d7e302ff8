package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// Lab is what the console drives: the demo's view of its servers and their
// connections. Implementations must be safe for concurrent use.
type Lab interface {
	State(ctx context.Context) (State, error)
	// HandOff moves every service, each with its address and its
	// connections, to server to ("": from the VIP's holder to the next
	// server). It blocks until done. An error wrapping ErrBadRequest
	// means nothing was tried.
	HandOff(ctx context.Context, to string) (Report, error)
}

// Classroom is a Lab that can also hand off one phase at a time and break
// a hand-off on purpose, for teaching. A Lab without it gets no step mode
// and no break-it toggles: they are for the lab, never a real service.
type Classroom interface {
	Lab
	// HandOffWith runs one hand-off as req says. With req.Step it blocks
	// until every phase was released by Step (or the hand-off rolled back,
	// or ctx ended), and State reports the phase waiting meanwhile.
	HandOffWith(ctx context.Context, req HandOffRequest) (Report, error)
	// Step releases the phase a step-mode hand-off waits for, or with
	// abort rolls the hand-off back; it returns the phase's name.
	Step(ctx context.Context, abort bool) (string, error)
}

// Recorder is a Lab that keeps files about its latest hand-off:
// "latest.pcap" (the client's side, for Wireshark) and "latest.svg" (a
// sequence diagram of the client's packets around the switch).
type Recorder interface {
	Lab
	// HandOffFile returns the named file and its content type, or an
	// error wrapping ErrNoFile when there is none (yet).
	HandOffFile(ctx context.Context, name string) ([]byte, string, error)
}

// ErrNoFile is wrapped by Recorder.HandOffFile when the file does not
// exist, for instance before the first hand-off.
var ErrNoFile = errors.New("no such file")

// ErrBadRequest is wrapped by a Lab's hand-off error when the request
// asked for what cannot be (a server the lab does not have, a target that
// already holds everything that would move) and nothing was tried: the
// console answers 400, not 502, and keeps the latest report.
var ErrBadRequest = errors.New("bad request")

// HandOffRequest is the body of POST /api/handoff.
type HandOffRequest struct {
	To string `json:"to"` // a server's name, or "" (the next server)
	// Step runs the hand-off one phase at a time, each released by POST
	// /api/step; POST /api/handoff then answers 202 at once.
	Step  bool   `json:"step,omitempty"`
	Break *Break `json:"break,omitempty"`
	// Services names the services to move, with their addresses (see
	// State.Services); absent means every service. Given, it must name at
	// least one, and the lab must be a Classroom.
	Services []string `json:"services,omitempty"`
}

// Break holds the break-it toggles: each leaves out what a step is for.
type Break struct {
	// SkipAnnounce: the target sends no gratuitous ARP, so the client
	// keeps sending to the old server, which dropped the address.
	SkipAnnounce bool `json:"skip_announce,omitempty"`
	// KeepVIP: the source keeps the address, so its kernel answers the
	// client's next segment with a reset (with SkipAnnounce).
	KeepVIP bool `json:"keep_vip,omitempty"`
}

// State is a snapshot of the lab, served by GET /api/state and pushed as the
// "state" event.
type State struct {
	Holder string `json:"holder"` // "a" or "b" ("" if nobody)
	VIP    string `json:"vip"`
	// Services are the services, each with its own address and the server
	// that holds it now.
	Services    []Service    `json:"services"`
	Nodes       []Node       `json:"nodes"`
	Connections []Connection `json:"connections"`
	Client      *ClientStats `json:"client,omitempty"`
	// ClientHost is the client machine: its address, MAC and ARP entry
	// for the VIP (which MAC it sends the VIP's packets to).
	ClientHost *ClientHost `json:"client_host,omitempty"`
	// Step is the running step-mode hand-off, if any.
	Step *StepState `json:"step,omitempty"`
	// Unheld lists, in plain words, each service address that no server
	// holds now (a server died mid-hand-off; the one that last held it
	// takes it back on its own).
	Unheld []string `json:"unheld,omitempty"`
	// Features says what this console offers; the server fills it in.
	Features Features `json:"features"`
}

// Node is one server of the lab.
type Node struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	MAC         string `json:"mac"`
	HoldsVIP    bool   `json:"holds_vip"`
	Connections int    `json:"connections"`
	Up          bool   `json:"up"`
	// Recovered says what the server settled from its journal when it
	// last started: hand-offs its previous process left open.
	Recovered []string `json:"recovered,omitempty"`
	// Namespace and Interface name the host, for the shell commands the
	// console shows (ip -n <namespace> addr show dev <interface>).
	Namespace string `json:"namespace,omitempty"`
	Interface string `json:"interface,omitempty"`
}

// ClientHost is the lab's client machine.
type ClientHost struct {
	Address   string `json:"address"`
	MAC       string `json:"mac"`
	Namespace string `json:"namespace,omitempty"`
	Interface string `json:"interface,omitempty"`
	// ARP is the client's neighbour entry for the VIP, as `ip neigh show`
	// prints it; ARPMAC the MAC in it ("" when unresolved).
	ARP    string `json:"arp"`
	ARPMAC string `json:"arp_mac"`
}

// StepState says where a step-mode hand-off stands.
type StepState struct {
	From    string   `json:"from"`
	To      string   `json:"to"`
	Waiting string   `json:"waiting"` // the phase the next step runs ("" while one runs)
	Done    []string `json:"done"`
	Phases  []string `json:"phases"` // every phase, in order
	Break   *Break   `json:"break,omitempty"`
}

// Features are the console's optional parts.
type Features struct {
	Step    bool `json:"step"`    // step mode and break-it toggles (a Classroom lab)
	Capture bool `json:"capture"` // latest.pcap and latest.svg (a Recorder lab)
	// BreakHoldMS is how long a hand-off broken on purpose stays broken
	// before the lab puts it right (0: the lab does not say); the lab
	// fills it in.
	BreakHoldMS int64 `json:"break_hold_ms,omitempty"`
}

// Service is one service of the lab and where its address is.
type Service struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	Holder  string `json:"holder"` // "a" or "b" ("" if nobody)
}

// Connection is one client connection of a service.
type Connection struct {
	Service  string `json:"service"`
	Client   string `json:"client"`
	Node     string `json:"node"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	// Local is the address the client connected to: a service's, or a
	// server's own.
	Local string `json:"local,omitempty"`
	// HandOff is what the latest hand-off did with it: "moved", "stayed"
	// ("" if it took no part), and Reason why it stayed.
	HandOff string `json:"handoff,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Stayed is a connection that stayed on the source of a hand-off, and why.
type Stayed struct {
	Service string `json:"service"`
	Client  string `json:"client"`
	Local   string `json:"local"`
	Reason  string `json:"reason"`
}

// ClientStats are the statistics of the demo's built-in client.
type ClientStats struct {
	Mode       string `json:"mode"`
	Bytes      uint64 `json:"bytes"`
	Errors     uint64 `json:"errors"`
	LastRTTus  int64  `json:"last_rtt_us"`
	WorstGapUS int64  `json:"worst_gap_us"`
}

// Phase is one step of a hand-off and how long it took.
type Phase struct {
	Name string `json:"name"`
	US   int64  `json:"us"`
}

// Report is the outcome of one hand-off, answered by POST /api/handoff and
// pushed as the "handoff" event.
type Report struct {
	OK          bool         `json:"ok"`
	From        string       `json:"from"`
	To          string       `json:"to"`
	Connections int          `json:"connections"`
	TotalUS     int64        `json:"total_us"`
	Phases      []Phase      `json:"phases"`
	Error       string       `json:"error,omitempty"`
	Remaining   []Connection `json:"remaining,omitempty"` // on failure: connections still served by the source
	// Services and Addresses moved; Stayed are the connections that
	// stayed on the source, and why.
	Services  []string `json:"services"`
	Addresses []string `json:"addresses"`
	Stayed    []Stayed `json:"stayed"`

	// What the demo measured around the hand-off (zero when unknown).
	StartedMS int64 `json:"started_ms,omitempty"` // Unix milliseconds, the server's clock
	EndedMS   int64 `json:"ended_ms,omitempty"`
	// GapUS is the client-visible gap: the longest round trip of the demo
	// client that overlapped the hand-off.
	GapUS      int64  `json:"gap_us,omitempty"`
	Caught     int    `json:"caught"` // client frames caught during the switch and delivered
	RolledBack bool   `json:"rolled_back,omitempty"`
	Step       bool   `json:"step,omitempty"`
	Break      *Break `json:"break,omitempty"`
	// Moved is the TCP state of the first connections, before and after.
	Moved []Moved `json:"moved,omitempty"`
	// ARPBefore and ARPAfter are the client's ARP entry for the VIP.
	ARPBefore string   `json:"arp_before,omitempty"`
	ARPAfter  string   `json:"arp_after,omitempty"`
	Capture   *Capture `json:"capture,omitempty"`
	// Note explains what a break-it hand-off did and how the lab was put
	// right afterwards.
	Note string `json:"note,omitempty"`
	Fate *Fate  `json:"fate,omitempty"` // what the client's frames show happened
}

// Moved is one connection's TCP state as the source dumped it and as the
// target rebuilt it. The state is the lab's (the demo's is a
// handoff.TCPSummary); the page shows its fields by their JSON names
// (send_seq, recv_seq, snd_wnd, mss, ...).
type Moved struct {
	Client string `json:"client"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

// Capture sums up the client's frames recorded around the hand-off.
type Capture struct {
	Frames    int  `json:"frames"`
	TCP       int  `json:"tcp"`
	ARP       int  `json:"arp"`
	Resets    int  `json:"resets"`    // TCP segments with RST
	Announced bool `json:"announced"` // a gratuitous ARP for the VIP was seen
	ID        int  `json:"id"`        // changes with every capture (for caches)
}

// Event is one message of the live stream. On the wire (GET /api/events) it
// is "event: <Type>\ndata: <Data as JSON>\n\n". The console itself sends
// "state" (a State), "handoff" (a Report) and "error" ({"error": "..."},
// when Lab.State fails). The demo adds, with Publish: "client"
// (ClientStats), "sample" (a Sample) and "chat" (a ChatLine); the page
// draws each of them.
type Event struct {
	Type string `json:"type"` // "state", "handoff", "client", "sample", "chat"
	Data any    `json:"data"`
}

// Sample is a batch of the demo client's measurements, pushed as the
// "sample" event a few times a second for the live graph.
type Sample struct {
	// RTT holds round trips: [Unix ms when sent, microseconds].
	RTT [][2]int64 `json:"rtt"`
	// At is when the throughput was measured (Unix ms); Up and Down are
	// the bytes per second of TCP payload between the client and the VIP.
	At   int64 `json:"at"`
	Up   int64 `json:"up"`
	Down int64 `json:"down"`
	// WaitingUS is how long the client has been waiting for its current
	// round trip (0 when none is late): a client stalled by a paused
	// step-mode hand-off shows here before its round trip completes.
	WaitingUS int64 `json:"waiting_us,omitempty"`
}

// ChatLine is one chat message seen passing, pushed as the "chat" event
// by whoever runs a chat service.
type ChatLine struct {
	At     int64  `json:"at"` // Unix ms
	From   string `json:"from"`
	Text   string `json:"text"`
	Server string `json:"server,omitempty"` // "a" or "b": which server relayed it
}

// Config configures a Server.
type Config struct {
	Lab Lab
	// Token is required for POST when the listener is not loopback; New
	// refuses a non-loopback Listen with an empty token. When set, every POST
	// needs "Authorization: Bearer <Token>".
	Token string
	// Listen is the address the console is meant to listen on (Serve takes
	// the listener); it decides whether a token is required. Default
	// "127.0.0.1:8080".
	Listen string
	// StatePeriod is how often State is polled and pushed as an event while
	// somebody listens; default 500 ms.
	StatePeriod time.Duration
}

const (
	defaultListen      = "127.0.0.1:8080"
	defaultStatePeriod = 500 * time.Millisecond
	// shutdownGrace bounds how long Serve waits for running requests (a
	// hand-off in progress) once its context is done.
	shutdownGrace = 10 * time.Second
)

// Server is the console. Create it with New.
type Server struct {
	lab     Lab
	token   string
	handler http.Handler
	events  *broker
	// handingOff is set while a hand-off runs: only one at a time.
	handingOff atomic.Bool
	// background counts step-mode hand-offs running without a request.
	background sync.WaitGroup
	// latest is the last hand-off's report, for a page loaded after it.
	latest atomic.Pointer[Report]
}

// New checks cfg and builds the console. It refuses a Listen address that
// is not loopback unless a Token is set.
func New(cfg Config) (*Server, error) {
	if cfg.Lab == nil {
		return nil, errors.New("web: config: Lab is nil")
	}
	if cfg.Listen == "" {
		cfg.Listen = defaultListen
	}
	if cfg.StatePeriod < 0 {
		return nil, fmt.Errorf("web: config: negative StatePeriod %v", cfg.StatePeriod)
	}
	if cfg.StatePeriod == 0 {
		cfg.StatePeriod = defaultStatePeriod
	}
	loopback, err := isLoopbackListen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("web: config: listen %q: %w", cfg.Listen, err)
	}
	if !loopback && cfg.Token == "" {
		return nil, fmt.Errorf("web: config: listen %q is not loopback: a token is required", cfg.Listen)
	}
	s := &Server{lab: cfg.Lab, token: cfg.Token}
	s.events = newBroker(cfg.Lab, cfg.StatePeriod)
	h, err := s.routes()
	if err != nil {
		return nil, err
	}
	s.handler = h
	return s, nil
}

// Handler returns the console's HTTP handler (API, events and page), for
// use with any http.Server or httptest.
func (s *Server) Handler() http.Handler { return s.handler }

// Publish pushes e to every live event stream. It never blocks: a
// subscriber too slow to keep up loses events. Events whose Type is empty or
// not a single token, or whose Data cannot be encoded as JSON, are dropped.
func (s *Server) Publish(e Event) { s.events.publish(e) }

// hardStopKey carries, in request contexts, the context Serve cancels when
// the graceful shutdown runs out of time.
type hardStopKey struct{}

// serveKey carries, in request contexts, Serve's own context: a step-mode
// hand-off (which waits for people) ends as soon as the console stops.
type serveKey struct{}

// Serve serves the console on ln until ctx is done, then shuts down
// gracefully: event streams end at once, a running hand-off gets up to 10 s
// to finish before it is cancelled and the server closed. It returns nil
// after a clean shutdown, and an error if ln fails or the shutdown had to be
// forced. Serve closes ln. It refuses a non-loopback TCP listener when the
// Server has no token.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.checkListener(ln); err != nil {
		ln.Close()
		return err
	}
	hard, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// Requests inherit ctx, so event streams end as soon as ctx is
		// done, and Shutdown does not wait for them.
		BaseContext: func(net.Listener) context.Context {
			return context.WithValue(context.WithValue(ctx, hardStopKey{}, hard), serveKey{}, ctx)
		},
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("web: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(grace)
	if err != nil {
		hardStop()
		srv.Close()
		err = fmt.Errorf("web: shutdown %s: forced after %v: %w", ln.Addr(), shutdownGrace, err)
	}
	<-served // http.ErrServerClosed
	// A step-mode hand-off saw ctx end and is rolling back: let it finish.
	waited := make(chan struct{})
	go func() { s.background.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-grace.Done():
		hardStop()
		<-waited
	}
	return err
}

func (s *Server) checkListener(ln net.Listener) error {
	if s.token != "" {
		return nil
	}
	// Only TCP can reach beyond this host; a unix socket is local.
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		return fmt.Errorf("web: serve %s: listener is not loopback: a token is required", a)
	}
	return nil
}

// isLoopbackListen reports whether the host:port addr can only be reached
// from this host. Host names other than "localhost" are not resolved: they
// count as not loopback.
func isLoopbackListen(addr string) (bool, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false, err
	}
	return isLoopbackHost(host), nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// quietGin puts gin in release mode, so it prints no debug banner or route
// list. The mode is process-wide in gin; only this package uses gin.
func quietGin() {
	if gin.Mode() == gin.DebugMode {
		gin.SetMode(gin.ReleaseMode)
	}
}
