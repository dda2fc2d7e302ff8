package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/sockshift/sockshift/demo/internal/wait"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sockshift/sockshift/demo/lab"
)

// ChatMaxClients bounds the soak's chat clients: each is a socket in the
// bench and one in a server, under a file limit of 20000 per process.
const ChatMaxClients = 5000

// chatNodeArgs raises the servers' chat bounds (default 1000 clients, 500
// per channel) so every soak client fits in #lab.
func chatNodeArgs(clients int) []string {
	n := strconv.Itoa(max(clients+50, 1000))
	return []string{"--chat-max-clients", n, "--chat-max-members", n}
}

// SoakResult is the soak: hand-offs back to back under load, and the
// servers' memory and open files from start to end.
type SoakResult struct {
	Handoffs    int   `json:"handoffs"`
	Failed      int   `json:"failed"`
	WrongCount  int   `json:"wrong_count"` // hand-offs that moved another number of connections
	Streams     int   `json:"streams"`
	ChatClients int   `json:"chat_clients"`
	ChatAlive   int   `json:"chat_alive"` // still connected and answering a PING at the end
	ServerTotal Dist  `json:"server_total_us"`
	ElapsedMS   int64 `json:"elapsed_ms"`

	StreamBytes  uint64   `json:"stream_bytes"` // verified, in order, all streams
	Pings        int      `json:"pings"`
	Errors       []string `json:"errors"` // client-side: streams, ping-pong, chat
	FirstFailure string   `json:"first_failure,omitempty"`

	// Samples are the servers' processes: before the clients connect,
	// with them connected at the start, along the soak, at the end (still
	// connected), and after they closed.
	Samples []ProcSample `json:"samples"`
}

// ProcSample is both servers' processes at one point of the soak.
type ProcSample struct {
	When     string     `json:"when"`
	Handoffs int        `json:"handoffs"`
	Nodes    []ProcStat `json:"nodes"`
}

// ProcStat is one server's process.
type ProcStat struct {
	Role   string `json:"role"`
	PID    int    `json:"pid"`
	RSSKiB int64  `json:"rss_kib"` // VmRSS
	FDs    int    `json:"fds"`     // entries of /proc/PID/fd
	Error  string `json:"error,omitempty"`
}

// Sample returns the sample taken at when, if any.
func (s *SoakResult) Sample(when string) (ProcSample, bool) {
	for _, p := range s.Samples {
		if p.When == when {
			return p, true
		}
	}
	return ProcSample{}, false
}

func (b *bench) sample(sr *SoakResult, when string, handoffs int) {
	ps := ProcSample{When: when, Handoffs: handoffs}
	for _, role := range b.c.Servers() {
		st := ProcStat{Role: role}
		pid, err := findProcess(b.c.ControlPath(role))
		if err == nil {
			st.PID = pid
			st.RSSKiB, st.FDs, err = procStats(pid)
		}
		if err != nil {
			st.Error = err.Error()
		}
		ps.Nodes = append(ps.Nodes, st)
	}
	sr.Samples = append(sr.Samples, ps)
}

// chatClient is one idle IRC client: it answers the server's PINGs and
// reports the answer to its own.
type chatClient struct {
	c    net.Conn
	r    *bufio.Reader
	mu   sync.Mutex // writes
	pong chan string
	err  atomic.Pointer[error]
	done chan struct{}
}

func chatChannel(int) string { return "#lab" }

func (cc *chatClient) write(line string) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.c.SetWriteDeadline(time.Now().Add(stallLimit))
	_, err := io.WriteString(cc.c, line+"\r\n")
	return err
}

// register sends NICK, USER and JOIN and waits for the end of the
// channel's names (366): joined.
func (cc *chatClient) register(i int) error {
	nick, ch := fmt.Sprintf("soak%d", i), chatChannel(i)
	if err := cc.write(fmt.Sprintf("NICK %s\r\nUSER %s 0 * :soak client\r\nJOIN %s", nick, nick, ch)); err != nil {
		return err
	}
	cc.c.SetReadDeadline(time.Now().Add(2 * stallLimit))
	defer cc.c.SetReadDeadline(time.Time{})
	for {
		line, err := cc.r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("chat client %s: registering: %w", nick, err)
		}
		f := strings.Fields(line)
		switch {
		case len(f) >= 4 && f[1] == "366" && strings.EqualFold(f[3], ch):
			return nil
		case len(f) >= 2 && (f[0] == "ERROR" || f[1] != "422" && len(f[1]) == 3 && (f[1][0] == '4' || f[1][0] == '5')):
			// (422 is "no MOTD", a greeting, not a refusal)
			return fmt.Errorf("chat client %s: %s", nick, strings.TrimSpace(line))
		case len(f) >= 2 && f[0] == "PING":
			cc.write("PONG " + f[1])
		}
	}
}

// read answers PINGs and passes on PONGs until the connection ends.
func (cc *chatClient) read() {
	defer close(cc.done)
	for {
		line, err := cc.r.ReadString('\n')
		if err != nil {
			cc.err.Store(&err)
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "PING":
			if err := cc.write("PONG " + f[1]); err != nil {
				cc.err.Store(&err)
			}
		case len(f) >= 4 && f[1] == "PONG":
			select {
			case cc.pong <- strings.TrimPrefix(f[3], ":"):
			default:
			}
		case len(f) >= 1 && f[0] == "ERROR":
			err := fmt.Errorf("server: %s", strings.TrimSpace(line))
			cc.err.Store(&err)
		}
	}
}

// alive checks the client is still registered and answers: a PING with a
// token of its own must come back as a PONG.
func (cc *chatClient) alive(i int) error {
	if p := cc.err.Load(); p != nil {
		return *p
	}
	token := fmt.Sprintf("alive-%d", i)
	if err := cc.write("PING :" + token); err != nil {
		return err
	}
	timeout := time.After(stallLimit)
	for {
		select {
		case got := <-cc.pong:
			if got == token {
				return nil
			}
		case <-cc.done:
			return *cc.err.Load()
		case <-timeout:
			return fmt.Errorf("chat client %d: no PONG within %v", i, stallLimit)
		}
	}
}

// openChat connects and registers n chat clients.
func (b *bench) openChat(ctx context.Context, n int) ([]*chatClient, error) {
	clients := make([]*chatClient, n)
	addr := net.JoinHostPort(lab.ChatVIP.String(), "6667")
	_, err := parallel(ctx, n, func(i int) error {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		c, err := b.c.Dial(dctx, "tcp4", addr)
		cancel()
		if err != nil {
			return fmt.Errorf("chat client %d: %w", i, err)
		}
		cc := &chatClient{c: c, r: bufio.NewReader(c), pong: make(chan string, 1), done: make(chan struct{})}
		clients[i] = cc
		if err := cc.register(i); err != nil {
			return err
		}
		go cc.read()
		return nil
	})
	if err != nil {
		closeChat(clients)
		return nil, err
	}
	return clients, nil
}

func closeChat(clients []*chatClient) {
	for _, cc := range clients {
		if cc != nil {
			cc.c.Close()
		}
	}
}

// soak hands off back to back while verified streams, the ping-pong
// client and idle chat clients ride along.
func (b *bench) soak(ctx context.Context, res *Result) error {
	cfg := b.cfg
	sr := &SoakResult{Streams: cfg.Streams, ChatClients: cfg.ChatClients}
	res.Soak = sr
	b.progressf("soak: %d hand-offs back to back; %d verified full-speed streams, 1 ping-pong, %d idle chat clients",
		cfg.Soak, cfg.Streams, cfg.ChatClients)
	b.sample(sr, "before", 0)
	began := time.Now()

	chat, err := b.openChat(ctx, cfg.ChatClients)
	if err != nil {
		return fmt.Errorf("open the chat clients: %w", err)
	}
	defer closeChat(chat)
	b.progressf("soak: %d chat clients registered and joined in %.1f s", len(chat), time.Since(began).Seconds())

	origin := time.Now()
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var errMu sync.Mutex
	addErr := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(sr.Errors) < 20 {
			sr.Errors = append(sr.Errors, err.Error())
		}
	}
	type stream struct {
		c       net.Conn
		r       *streamReader
		written atomic.Uint64
		rerr    chan error
		werr    chan error
	}
	var streams []*stream
	defer func() {
		for _, s := range streams {
			s.c.Close()
		}
	}()
	for i := 0; i < cfg.Streams; i++ {
		c, err := b.dial(ctx)
		if err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		s := &stream{c: c, rerr: make(chan error, 1), werr: make(chan error, 1)}
		s.r = &streamReader{c: c, origin: origin, written: &s.written}
		streams = append(streams, s)
		watchCtx, stopWatch := context.WithCancel(ctx)
		go func() { s.rerr <- s.r.run(ctx); stopWatch() }()
		go func() { s.werr <- writeStream(loadCtx, c, &s.written) }()
		go b.stallWatch(watchCtx, c, s.r.verified.Load,
			func() bool { return s.r.verified.Load() < s.written.Load() },
			func(ss string) {
				b.progressf("soak: stream %d stalled at %d of %d bytes; the sockets:\n%s", i, s.r.verified.Load(), s.written.Load(), ss)
			})
	}
	pc, err := b.dial(ctx)
	if err != nil {
		return fmt.Errorf("ping-pong: %w", err)
	}
	defer pc.Close()
	p := &pinger{c: pc, origin: origin}
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		p.run(loadCtx)
	}()
	wait.Sleep(ctx, 300*time.Millisecond) // past slow start
	b.sample(sr, "start", 0)

	want := cfg.Streams + 1 + cfg.ChatClients
	var totals []int64
	every := max(1, cfg.Soak/10)
	lastReport := time.Now()
	for i := 0; i < cfg.Soak && ctx.Err() == nil; i++ {
		h, err := b.handOff(ctx, origin)
		if err != nil {
			return err
		}
		sr.Handoffs++
		switch {
		case !h.OK:
			sr.Failed++
			if sr.FirstFailure == "" {
				sr.FirstFailure = fmt.Sprintf("hand-off %d %s→%s: %s", i+1, h.From, h.To, h.Error)
			}
		case h.Connections != want:
			sr.WrongCount++
			if sr.FirstFailure == "" {
				sr.FirstFailure = fmt.Sprintf("hand-off %d %s→%s moved %d connections, want %d", i+1, h.From, h.To, h.Connections, want)
			}
		default:
			totals = append(totals, h.TotalUS)
		}
		if k := i + 1; k%every == 0 || k == cfg.Soak || time.Since(lastReport) > 5*time.Second {
			lastReport = time.Now()
			if k%every == 0 && k != cfg.Soak {
				b.sample(sr, "along", k)
			}
			var verified uint64
			for _, s := range streams {
				verified += s.r.verified.Load()
			}
			d := summarize(totals)
			b.progressf("soak: %d/%d hand-offs, %d failed, freeze→resume p50 %s max %s, %s verified",
				k, cfg.Soak, sr.Failed+sr.WrongCount, usAsMS(d.P50), usAsMS(d.Max), size(verified))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	wait.Sleep(ctx, 200*time.Millisecond)
	b.sample(sr, "end", sr.Handoffs)

	// Every stream ends its half and must get every byte back.
	stopLoad()
	<-pingDone
	for i, s := range streams {
		if err := <-s.werr; err != nil {
			addErr(fmt.Errorf("stream %d: %w", i, err))
			s.c.Close()
		}
		if err := <-s.rerr; err != nil {
			addErr(fmt.Errorf("stream %d: %w", i, err))
		}
		sr.StreamBytes += s.r.got
	}
	if p.err != nil {
		addErr(fmt.Errorf("ping-pong: %w", p.err))
	}
	sr.Pings = len(p.rts)
	sr.ChatAlive, err = parallel(ctx, len(chat), func(i int) error { return chat[i].alive(i) })
	if err != nil {
		addErr(fmt.Errorf("chat: %d of %d clients gone: first %w", len(chat)-sr.ChatAlive, len(chat), err))
	}
	sr.ServerTotal = summarize(totals)
	sr.ElapsedMS = time.Since(began).Milliseconds()
	b.progressf("soak: %d hand-offs, %d failed; %s verified, %d pings, %d/%d chat clients alive",
		sr.Handoffs, sr.Failed+sr.WrongCount, size(sr.StreamBytes), sr.Pings, sr.ChatAlive, len(chat))

	closeChat(chat)
	for _, s := range streams {
		s.c.Close()
	}
	pc.Close()
	if err := b.waitIdle(ctx); err != nil {
		addErr(err)
	}
	b.sample(sr, "after", sr.Handoffs)
	return nil
}

func (s *SoakResult) problems(add func(format string, args ...any)) {
	if s.Failed > 0 || s.WrongCount > 0 {
		add("soak: %d of %d hand-offs failed or moved the wrong count; first: %s", s.Failed+s.WrongCount, s.Handoffs, s.FirstFailure)
	}
	for _, e := range s.Errors {
		add("soak: %s", e)
	}
	if s.ChatAlive != s.ChatClients {
		add("soak: only %d of %d chat clients alive at the end", s.ChatAlive, s.ChatClients)
	}
	for _, p := range s.Samples {
		for _, n := range p.Nodes {
			if n.Error != "" {
				add("soak: server %s at %s: %s", n.Role, p.When, n.Error)
			}
		}
	}
}

// WriteSoakTable prints a soak's result as aligned text for people.
func (r *Result) WriteSoakTable(w io.Writer) {
	s := r.Soak
	if s == nil {
		return
	}
	fmt.Fprintf(w, "sockshift bench --soak, %s, on %s\n", r.Date.Format("2006-01-02 15:04 MST"), r.Machine)
	if r.Command != "" {
		fmt.Fprintf(w, "command: %s\n", r.Command)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")) }
	fmt.Fprintf(w, "\nSoak: hand-offs back to back, %d verified full-speed streams, 1 ping-pong, %d idle chat clients (%.1f s)\n",
		s.Streams, s.ChatClients, float64(s.ElapsedMS)/1000)
	row("  hand-offs", fmt.Sprintf("%d (%d failed, %d moved a wrong count)", s.Handoffs, s.Failed, s.WrongCount))
	row("  server freeze→resume", fmt.Sprintf("p50 %s  p90 %s  max %s", usAsMS(s.ServerTotal.P50), usAsMS(s.ServerTotal.P90), usAsMS(s.ServerTotal.Max)))
	row("  streams", fmt.Sprintf("%s verified in order", size(s.StreamBytes)))
	row("  ping-pong", fmt.Sprintf("%d round trips", s.Pings))
	row("  chat clients alive at the end", fmt.Sprintf("%d of %d", s.ChatAlive, s.ChatClients))
	row("  client errors", fmt.Sprint(len(s.Errors)))
	for _, e := range s.Errors {
		row("", e)
	}
	if s.FirstFailure != "" {
		row("  first failure", s.FirstFailure)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nServer processes (RSS, open files)\n")
	row("  when", "hand-offs", "a", "b")
	for _, p := range s.Samples {
		cells := []string{"  " + p.When, fmt.Sprint(p.Handoffs)}
		for _, n := range p.Nodes {
			if n.Error != "" {
				cells = append(cells, "? ("+n.Error+")")
				continue
			}
			cells = append(cells, fmt.Sprintf("%.1f MiB, %d fds", float64(n.RSSKiB)/1024, n.FDs))
		}
		row(cells...)
	}
	tw.Flush()
}

var errNoProcess = errors.New("bench: no server process found")
