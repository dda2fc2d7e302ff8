package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/node"
)

// DefaultPrefix names the bench's own lab, so it can run beside a demo.
const DefaultPrefix = "ssb"

// StallUS is where a gap counts as a stall: a retransmission timeout
// (at least 200 ms on Linux) or worse.
const StallUS = 100_000

// Config says what to measure. Zero fields take the defaults noted.
type Config struct {
	Prefix     string    // lab prefix; default DefaultPrefix
	Exe        string    // the sockshift binary the servers run; default this program
	RunDir     string    // control sockets and key; default cluster's
	NodeOutput io.Writer // the servers' logs; default discarded

	Handoffs int           // ping-pong hand-offs; default 200
	Pause    time.Duration // between ping-pong hand-offs; default 30 ms

	StreamDuration time.Duration // the full-speed stream's length; default 10 s
	StreamHandoffs int           // hand-offs during the stream; default 20

	Bulk     []int  // connection counts, each handed off twice; default 1, 100, 1000, 10000
	Baseline int    // plain fail-overs; default 10
	Command  string // the command line, for the report

	// Soak, above zero, runs the soak instead of the measurements above:
	// this many hand-offs back to back, with Streams verified full-speed
	// streams, a ping-pong client and ChatClients idle chat clients riding
	// along, and the servers' memory and open files sampled throughout.
	Soak        int
	Streams     int // default 2 (soak only)
	ChatClients int // default 200, at most ChatMaxClients (soak only)
}

func (cfg *Config) defaults() {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.NodeOutput == nil {
		cfg.NodeOutput = io.Discard
	}
	if cfg.Handoffs <= 0 {
		cfg.Handoffs = 200
	}
	if cfg.Pause <= 0 {
		cfg.Pause = 30 * time.Millisecond
	}
	if cfg.StreamDuration <= 0 {
		cfg.StreamDuration = 10 * time.Second
	}
	if cfg.StreamHandoffs <= 0 {
		cfg.StreamHandoffs = 20
	}
	if cfg.Bulk == nil {
		cfg.Bulk = []int{1, 100, 1000, 10000}
	}
	if cfg.Baseline <= 0 {
		cfg.Baseline = 10
	}
	if cfg.Streams == 0 {
		cfg.Streams = 2
	}
	if cfg.ChatClients == 0 {
		cfg.ChatClients = 200
	}
}

// Result is what a run measured. Times are microseconds unless named
// otherwise.
type Result struct {
	Date      time.Time `json:"date"`
	Machine   Machine   `json:"machine"`
	Command   string    `json:"command"`
	Prefix    string    `json:"prefix"`
	ElapsedMS int64     `json:"elapsed_ms"`

	Ping     PingResult     `json:"ping"`
	Stream   StreamResult   `json:"stream"`
	Bulk     []BulkResult   `json:"bulk"`
	Baseline BaselineResult `json:"baseline"`
	Soak     *SoakResult    `json:"soak,omitempty"`

	// Problems lists what went wrong in the measured system: failed
	// hand-offs, wrong or lost bytes, dead connections. Empty is a pass.
	Problems []string `json:"problems"`
}

// Machine is where the run happened.
type Machine struct {
	Kernel string `json:"kernel"` // uname: system, release, machine
	CPUs   int    `json:"cpus"`
	CPU    string `json:"cpu,omitempty"` // model name
	Go     string `json:"go"`
}

func (m Machine) String() string {
	s := fmt.Sprintf("%s, %d CPUs", m.Kernel, m.CPUs)
	if m.CPU != "" {
		s += " (" + m.CPU + ")"
	}
	return s
}

// Handoff is one hand-off: the servers' report and, for ping-pong, the
// client-visible gap.
type Handoff struct {
	From        string       `json:"from"`
	To          string       `json:"to"`
	OK          bool         `json:"ok"`
	Error       string       `json:"error,omitempty"`
	Connections int          `json:"connections"`
	TotalUS     int64        `json:"total_us"` // freeze → resume, server side
	Phases      []node.Phase `json:"phases,omitempty"`
	StartUS     int64        `json:"start_us"` // the request's window on the client's clock,
	EndUS       int64        `json:"end_us"`   // from the start of its part of the run
	GapUS       int64        `json:"gap_us,omitempty"`
	// QueuedBytes is what the reported connections (the first few) had
	// queued at the freeze, both ways: what a busy stream's hand-off moves.
	QueuedBytes int64 `json:"queued_bytes,omitempty"`
}

// PingResult is the ping-pong client through hand-offs.
type PingResult struct {
	Handoffs          int       `json:"handoffs"`
	Failed            int       `json:"failed"`
	GapUS             Dist      `json:"gap_us"` // client-visible, per hand-off
	Stalls            int       `json:"stalls"` // gaps >= StallUS
	ServerTotalUS     Dist      `json:"server_total_us"`
	NormalRTTUS       Dist      `json:"normal_rtt_us"` // round trips away from hand-offs
	Pings             int       `json:"pings"`
	ClientRetransmits uint32    `json:"client_retransmits"` // TCP_INFO total_retrans
	Error             string    `json:"error,omitempty"`
	PerHandoff        []Handoff `json:"per_handoff"`

	rts []roundTrip // for the plot
}

// Run brings up the bench's lab, measures, removes the lab, and returns
// what it measured. Progress goes to progress (nil: nowhere). The error is
// for a run that could not be done (no lab, interrupted); what the run
// found wrong is in Result.Problems.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	cfg.defaults()
	if progress == nil {
		progress = io.Discard
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	began := time.Now()
	res := &Result{Date: began.UTC().Truncate(time.Second), Machine: machine(), Command: cfg.Command, Prefix: cfg.Prefix}
	fmt.Fprintf(progress, "bench: starting lab %q\n", cfg.Prefix)
	chatArgs := chatNodeArgs(cfg.ChatClients)
	c, err := cluster.Start(ctx, cluster.Config{Prefix: cfg.Prefix, Exe: cfg.Exe, RunDir: cfg.RunDir, NodeOutput: cfg.NodeOutput,
		NodeArgs: map[string][]string{"a": chatArgs, "b": chatArgs}})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	b := &bench{cfg: cfg, c: c, out: progress, holder: "a"}
	type step struct {
		name string
		run  func(context.Context, *Result) error
	}
	steps := []step{
		{"ping-pong", b.ping},
		{"stream", b.stream},
		{"bulk", b.bulk},
		{"baseline", b.baseline},
	}
	if cfg.Soak > 0 {
		steps = []step{{"soak", b.soak}}
	}
	for _, s := range steps {
		if err := s.run(ctx, res); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("bench interrupted during the %s run: %w", s.name, context.Cause(ctx))
			}
			return nil, fmt.Errorf("bench: %s: %w", s.name, err)
		}
	}
	res.ElapsedMS = time.Since(began).Milliseconds()
	res.Problems = res.problems()
	fmt.Fprintf(progress, "bench: done in %.1f s\n", time.Since(began).Seconds())
	return res, nil
}

func (cfg *Config) check() error {
	for _, n := range cfg.Bulk {
		if n <= 0 {
			return fmt.Errorf("bench: bulk connection count %d: want a positive number", n)
		}
	}
	if err := lab.ValidatePrefix(cfg.Prefix); err != nil {
		return err
	}
	if cfg.Soak < 0 || cfg.Streams < 0 || cfg.ChatClients < 0 {
		return fmt.Errorf("bench: soak %d, streams %d, chat clients %d: want counts of zero or more", cfg.Soak, cfg.Streams, cfg.ChatClients)
	}
	if cfg.ChatClients > ChatMaxClients {
		return fmt.Errorf("bench: %d chat clients: the node's chat server takes at most %d", cfg.ChatClients, ChatMaxClients)
	}
	return nil
}

// bench is one run in its lab.
type bench struct {
	cfg    Config
	c      *cluster.Cluster
	out    io.Writer
	holder string // the server holding the VIP
}

func other(role string) string {
	if role == "a" {
		return "b"
	}
	return "a"
}

func (b *bench) progressf(format string, args ...any) {
	fmt.Fprintf(b.out, "bench: "+format+"\n", args...)
}

// echoAddr is the echo service on the VIP.
func echoAddr() string { return net.JoinHostPort(lab.VIP.String(), "7") }

// dial connects to the echo service from the client's namespace.
func (b *bench) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return b.c.Dial(ctx, "tcp4", echoAddr())
}

// handOff hands everything from the holder to the other server and
// records it; origin is the start of the calling part of the run.
func (b *bench) handOff(ctx context.Context, origin time.Time) (Handoff, error) {
	from, to := b.holder, other(b.holder)
	h := Handoff{From: from, To: to}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Since(origin)
	r, err := b.c.HandOff(hctx, from, to)
	end := time.Since(origin)
	h.StartUS, h.EndUS = start.Microseconds(), end.Microseconds()
	if err != nil {
		return h, fmt.Errorf("ask %s for a hand-off to %s: %w", from, to, err)
	}
	h.OK, h.Error, h.Connections, h.TotalUS, h.Phases = r.OK, r.Error, r.Connections, r.TotalUS, r.Phases
	for _, m := range r.Moved {
		h.QueuedBytes += int64(m.Before.RecvQueue + m.Before.Unacked + m.Before.Unsent)
	}
	switch {
	case r.OK:
		b.holder = to
	case !r.RolledBack:
		// Where the VIP ended up is for the servers to say.
		if holder, err := b.c.Holder(hctx); err == nil && holder != "" {
			b.holder = holder
		}
	}
	return h, nil
}

// waitIdle waits until the holder has no connection left, so the next
// part moves only its own. Bounded: a leftover is reported, not waited on.
func (b *bench) waitIdle(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := b.c.Control(b.holder).State(cctx)
		cancel()
		if err == nil && len(st.Connections) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("server %s: %w", b.holder, err)
			}
			return fmt.Errorf("server %s still has %d connections 15 s after the client closed them", b.holder, len(st.Connections))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// problems lists what went wrong in the measured system.
func (r *Result) problems() []string {
	p := []string{} // "[]" in JSON: nothing wrong
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	if r.Ping.Error != "" {
		add("ping-pong: %s", r.Ping.Error)
	}
	if r.Ping.Failed > 0 {
		add("ping-pong: %d of %d hand-offs failed", r.Ping.Failed, r.Ping.Handoffs)
	}
	if r.Stream.Failed > 0 {
		add("stream: %d of %d hand-offs failed", r.Stream.Failed, r.Stream.Handoffs)
	}
	if r.Stream.Errors > 0 {
		add("stream: %d errors: %s", r.Stream.Errors, r.Stream.Error)
	}
	for _, b := range r.Bulk {
		if b.Skipped != "" {
			continue
		}
		if b.Error != "" {
			add("bulk %d: %s", b.Conns, b.Error)
		}
		if b.Alive != b.Conns {
			add("bulk %d: only %d of %d connections still echo", b.Conns, b.Alive, b.Conns)
		}
		for _, h := range b.Handoffs {
			if !h.OK {
				add("bulk %d: hand-off %s→%s failed: %s", b.Conns, h.From, h.To, h.Error)
			} else if h.Connections != b.Conns {
				add("bulk %d: hand-off %s→%s moved %d connections", b.Conns, h.From, h.To, h.Connections)
			}
		}
	}
	if r.Baseline.Error != "" {
		add("baseline: %s", r.Baseline.Error)
	}
	if r.Soak != nil {
		r.Soak.problems(add)
	}
	return p
}

// Err is nil when the run found nothing wrong.
func (r *Result) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("bench found %d problems; first: %s", len(r.Problems), r.Problems[0])
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	m.Kernel, m.CPU = uname(), cpuModel()
	return m
}

// cpuModel reads the CPU's model name, if the system says it.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	return modelName(string(b))
}

func modelName(cpuinfo string) string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
