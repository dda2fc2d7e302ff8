package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// Lab is what the console drives: the demo's view of its servers and their
// connections. Implementations must be safe for concurrent use.
type Lab interface {
	State(ctx context.Context) (State, error)
	// HandOff moves every connection on the VIP; to is "a", "b" or "" (the other node). It blocks until done.
	HandOff(ctx context.Context, to string) (Report, error)
}

// State is a snapshot of the lab, served by GET /api/state and pushed as the
// "state" event.
type State struct {
	Holder      string       `json:"holder"` // "a" or "b" ("" if nobody)
	VIP         string       `json:"vip"`
	Nodes       []Node       `json:"nodes"`
	Connections []Connection `json:"connections"`
	Client      *ClientStats `json:"client,omitempty"`
}

// Node is one server of the lab.
type Node struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	MAC         string `json:"mac"`
	HoldsVIP    bool   `json:"holds_vip"`
	Connections int    `json:"connections"`
	Up          bool   `json:"up"`
}

// Connection is one client connection on the VIP.
type Connection struct {
	Service  string `json:"service"`
	Client   string `json:"client"`
	Node     string `json:"node"`
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
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
}

// Event is one message of the live stream. On the wire (GET /api/events) it
// is "event: <Type>\ndata: <Data as JSON>\n\n". The console itself sends
// "state" (a State), "handoff" (a Report) and "error" ({"error": "..."},
// when Lab.State fails); the demo adds "client" (ClientStats) with Publish.
type Event struct {
	Type string `json:"type"` // "state", "handoff", "client"
	Data any    `json:"data"`
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
			return context.WithValue(ctx, hardStopKey{}, hard)
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
