package chat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sockshift/sockshift/demo/internal/tcpserve"
	"github.com/sockshift/sockshift/handoff"
)

// Name is the service's name in hand-offs.
const Name = "chat"

// Config bounds the server. Zero fields take the defaults noted.
type Config struct {
	ServerName           string        // the server's name in replies; "sockshift"
	MaxClients           int           // connections at once; 1000
	MaxChannels          int           // channels on the server; 1000
	MaxChannelsPerClient int           // channels one client may join; 20
	MaxMembers           int           // clients in one channel; 500
	History              int           // lines kept per channel; 50
	MaxSendQ             int           // bytes queued for one client; 256 KiB
	LinesPerSecond       float64       // sustained lines handled per client; 10
	Burst                int           // lines handled at once before the rate applies; 20
	MaxJunk              int           // erroneous lines (net of good ones) before a disconnect; 20
	MaxLongLine          int           // bytes of one line without an end before a disconnect; 64 KiB
	PingInterval         time.Duration // silence before the server PINGs; 30 s
	PingTimeout          time.Duration // wait for an answer to a PING; 60 s

	// Password, if set, is the server password: a client must send it
	// with PASS before it registers, or it gets 464 and is dropped.
	Password string
	// Operators maps each OPER name to its password; none by default, so
	// nobody may become a server operator (OPER gets 491).
	Operators map[string]string
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.ServerName == "" {
		c.ServerName = "sockshift"
	}
	def(&c.MaxClients, 1000)
	def(&c.MaxChannels, 1000)
	def(&c.MaxChannelsPerClient, 20)
	def(&c.MaxMembers, 500)
	def(&c.History, 50)
	def(&c.MaxSendQ, 256<<10)
	def(&c.Burst, 20)
	def(&c.MaxJunk, 20)
	def(&c.MaxLongLine, 64<<10)
	// The queue must fit a snapshot, or the target would refuse it; the
	// other half is for what a source's kernel had not sent.
	c.MaxSendQ = min(c.MaxSendQ, maxSnapOut/2)
	if c.LinesPerSecond <= 0 {
		c.LinesPerSecond = 10
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 60 * time.Second
	}
	c.History = min(c.History, maxSnapHistory)
}

// Server is the chat service. The zero value uses the defaults of Config.
type Server struct {
	// Config is read once, when the server first serves or adopts.
	Config Config

	once sync.Once
	stop chan struct{} // closed by Close: ends the pinger
	made time.Time

	mu     sync.Mutex
	cond   *sync.Cond // signalled when a freeze ends
	conns  map[*conn]struct{}
	nicks  map[string]*conn    // folded nick -> registered client
	chans  map[string]*channel // folded name -> channel
	drops  []*conn             // to disconnect once the current handler is done
	late   []*conn             // accepted while a hand-off held the state still
	thawed time.Time           // when the last hand-off let go
	// addrGone reports whether an address left this host; addrGone
	// (this process's network namespace) when nil.
	addrGone func(net.Addr) bool
	maxUsers int  // the most registered clients LUSERS has seen at once
	frozen   bool // a hand-off holds the state still
	closed   bool
}

var (
	_ handoff.Service       = (*Server)(nil)
	_ handoff.SharedChecker = (*Server)(nil) // the target checks snapshots before the decision
	_ handoff.ConnChecker   = (*Server)(nil)
)

// New returns a server; a nil cfg applies the defaults.
func New(cfg *Config) *Server {
	s := &Server{}
	if cfg != nil {
		s.Config = *cfg
	}
	s.setup()
	return s
}

func (s *Server) setup() {
	s.once.Do(func() {
		s.Config.defaults()
		s.stop = make(chan struct{})
		s.made = time.Now()
		s.cond = sync.NewCond(&s.mu)
		s.conns = map[*conn]struct{}{}
		s.nicks = map[string]*conn{}
		s.chans = map[string]*channel{}
		go s.pinger()
	})
}

// Name implements handoff.Service.
func (s *Server) Name() string { return Name }

// ConnInfo describes one live connection.
type ConnInfo struct {
	Client   string
	Local    string // the address the client connected to
	Nick     string // empty before registration
	BytesIn  uint64 // read from the client
	BytesOut uint64 // written to the client
}

// Connections lists the live connections.
func (s *Server) Connections() []ConnInfo {
	s.setup()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnInfo, 0, len(s.conns))
	for c := range s.conns {
		info := ConnInfo{Client: c.c.RemoteAddr().String(), Local: c.c.LocalAddr().String(), BytesIn: c.bytesIn, BytesOut: c.bytesOut}
		if c.registered {
			info.Nick = c.nick
		}
		out = append(out, info)
	}
	return out
}

// Serve accepts connections on ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	s.setup()
	return tcpserve.Serve("chat", ln, func(tc *net.TCPConn) {
		c := s.newConn(tc)
		s.mu.Lock()
		recent := !s.frozen && time.Since(s.thawed) < lateWindow
		s.mu.Unlock()
		if recent && s.gone(tc.LocalAddr()) {
			// Its handshake was done by this host's kernel during a
			// hand-off that took its address away: it cannot be served
			// here (see lateConns).
			tc.Close()
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			tc.Close()
			return
		}
		s.conns[c] = struct{}{}
		if s.frozen {
			s.late = append(s.late, c)
		}
		if len(s.conns) > s.Config.MaxClients {
			s.drop(c, "Server is full")
		}
		s.mu.Unlock()
		s.start(c)
	})
}

// Close ends every connection.
func (s *Server) Close() error {
	s.setup()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	conns := s.conns
	s.conns = map[*conn]struct{}{}
	s.nicks = map[string]*conn{}
	s.chans = map[string]*channel{}
	for c := range conns {
		c.dead = true
		notify(c.wake)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	for c := range conns {
		c.c.Close()
	}
	return nil
}

// CloseConnections ends every connection (each client gets ERROR, then
// its socket closes) and keeps serving new ones: what a server without
// hand-off does when it goes away, and how a server lets go of clients
// whose address it no longer has. It returns how many it ended.
func (s *Server) CloseConnections() int {
	s.setup()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if !c.dead {
			s.drop(c, "Server going away")
			n++
		}
	}
	s.flushDrops()
	return n
}

// channel is one channel; members are registered clients.
type channel struct {
	name           string
	topic, topicBy string
	topicAt        int64 // Unix seconds
	created        int64 // Unix seconds
	modes          uint8 // modeT | modeN | modeI | modeM
	key            string
	limit          int
	members        map[*conn]struct{}
	ops            map[*conn]struct{} // members who are operators
	voices         map[*conn]struct{} // members with voice
	invites        []string           // nicks invited past +i, oldest first
	history        []historyLine
}

// conn is one client connection and its snapshot-able state.
type conn struct {
	c    *net.TCPConn
	host string

	// Owned by the reader goroutine (and read by a snapshot only while the
	// reader is parked).
	rbuf     []byte // what one Read takes
	in       []byte // read, not handled yet: under MaxLine + len(rbuf)
	discard  bool   // dropping the rest of a too-long line
	skipped  int    // bytes of a too-long line dropped, not yet paid for in lines of the rate
	longLine int    // bytes of the current too-long line so far
	readErr  error
	tokens   float64
	lastFill time.Time

	// Guarded by Server.mu.
	nick, user, real string
	registered       bool
	capHeld          bool   // registration waits for CAP END
	away             string // empty: here
	invisible        bool   // user mode +i
	oper             bool   // user mode +o: a server operator (OPER)
	passOK           bool   // PASS gave the server password
	chans            map[*channel]struct{}
	out              []byte // queued, not written yet
	inherited        int    // of out, the first bytes: a source's kernel had not sent them (not counted in MaxSendQ)
	writing          int    // of out, bytes the writer is writing now
	overflow         bool   // out hit MaxSendQ: being disconnected
	dead             bool
	lastActive       time.Time
	pingSent         time.Time // zero when no PING is outstanding
	junk             int
	bytesIn          uint64
	bytesOut         uint64
	pause            *pauseState

	wake chan struct{} // the writer has output, or must look at its state
	kick chan struct{} // the reader must stop waiting for its rate
	gone chan struct{} // closed when the writer ends (it closes the socket)
	bye  time.Duration // how long the last words may take; 2 s when zero
}

// pauseState is one pause of one connection's two goroutines.
type pauseState struct {
	parked  int
	done    chan struct{} // closed once both goroutines parked
	verdict chan struct{} // closed when the hand-off is decided
	stay    bool          // the verdict: go on here, or moved away
}

func (s *Server) newConn(tc *net.TCPConn) *conn {
	host := tc.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return &conn{
		c: tc, host: host, chans: map[*channel]struct{}{},
		tokens: float64(s.Config.Burst), lastFill: time.Now(), lastActive: time.Now(),
		wake: make(chan struct{}, 1), kick: make(chan struct{}, 1), gone: make(chan struct{}),
	}
}

func (s *Server) start(c *conn) {
	go s.readLoop(c)
	go s.writeLoop(c)
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// What nextLine found.
const (
	noLine  = iota
	oneLine // a whole line
	tooLong // a line over MaxLine: 417
	skipped // MaxLine more bytes of a too-long line: one line of the rate
)

// nextLine takes the next piece of work out of c.in. A line over MaxLine
// is dropped up to its end, which may come much later; what is dropped
// costs one line of the rate per MaxLine bytes, as if it were lines, so a
// client cannot make the server read faster by never ending its line.
func (c *conn) nextLine() (line []byte, kind int) {
	c.skip()
	if c.skipped >= MaxLine {
		c.skipped -= MaxLine
		return nil, skipped
	}
	if c.discard {
		return nil, noLine
	}
	c.skipped, c.longLine = 0, 0 // the last too-long line ended: its rest is free
	i := bytes.IndexByte(c.in, '\n')
	if i < 0 {
		if len(c.in) < MaxLine {
			return nil, noLine
		}
		// No end within MaxLine bytes: this line is too long.
		c.longLine = len(c.in)
		c.skipped = len(c.in) - MaxLine
		c.in = c.in[:0]
		c.discard = true
		return nil, tooLong
	}
	line, c.in = c.in[:i], c.in[i+1:]
	if i+1 > MaxLine {
		c.longLine = i + 1
		c.skipped = i + 1 - MaxLine
		return nil, tooLong
	}
	return bytes.TrimSuffix(line, []byte{'\r'}), oneLine
}

// skip drops what c.in holds of a too-long line, up to its end.
func (c *conn) skip() {
	if !c.discard {
		return
	}
	n := bytes.IndexByte(c.in, '\n')
	if n < 0 {
		// All of it goes; the buffer is kept, not a new one per read.
		c.skipped += len(c.in)
		c.longLine += len(c.in)
		c.in = c.in[:0]
		return
	}
	c.discard = false
	c.skipped += n + 1 // with its newline, as a line found whole counts
	c.longLine += n + 1
	c.in = c.in[n+1:]
}

// hasLine reports whether c.in holds something nextLine would return.
func (c *conn) hasLine() bool {
	c.skip()
	switch {
	case c.skipped >= MaxLine:
		return true
	case c.discard:
		return false
	}
	return bytes.IndexByte(c.in, '\n') >= 0 || len(c.in) >= MaxLine
}

// readLoop reads and handles one line at a time. It holds no line half
// handled when it parks: a pause finds it in Read, waiting for its rate,
// or between lines. Its read buffer is on the heap (in c): on the stack it
// made every new reader grow (copy) its stack at once, thousands of them
// on a target resuming thousands of clients.
func (s *Server) readLoop(c *conn) {
	c.rbuf = make([]byte, 4096)
	buf := c.rbuf
	for {
		s.mu.Lock()
		if c.dead {
			s.mu.Unlock()
			return
		}
		if c.pause != nil {
			if !s.park(c) {
				return
			}
			continue
		}
		if s.frozen {
			// A connection accepted during a hand-off waits for its end.
			s.cond.Wait()
			s.mu.Unlock()
			continue
		}
		if c.hasLine() {
			if wait := c.takeToken(s.Config); wait > 0 {
				s.mu.Unlock()
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-c.kick:
					t.Stop()
				}
				continue
			}
			switch line, kind := c.nextLine(); kind {
			case tooLong:
				s.reply(c, "417", "Input line was too long")
				s.junk(c)
			case oneLine:
				s.handleLine(c, line)
			}
			if c.longLine > s.Config.MaxLongLine {
				s.drop(c, "Input line too long")
			}
			s.flushDrops()
			s.mu.Unlock()
			continue
		}
		if c.readErr != nil {
			s.drop(c, readReason(c.readErr))
			s.flushDrops()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()

		n, err := c.c.Read(buf)
		c.in = append(c.in, buf[:n]...)
		c.skip()
		s.mu.Lock()
		c.bytesIn += uint64(n)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && c.pause == nil {
			c.readErr = err
		}
		s.mu.Unlock()
	}
}

func readReason(err error) string {
	if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
		return "Connection closed"
	}
	if errors.Is(err, io.EOF) {
		return "Connection closed"
	}
	return "Read error"
}

// takeToken spends one line of c's rate, or says how long until one is
// there. Called by the reader.
func (c *conn) takeToken(cfg Config) time.Duration {
	now := time.Now()
	c.tokens = min(float64(cfg.Burst), c.tokens+now.Sub(c.lastFill).Seconds()*cfg.LinesPerSecond)
	c.lastFill = now
	if c.tokens >= 1 {
		c.tokens--
		return 0
	}
	return time.Duration((1 - c.tokens) / cfg.LinesPerSecond * float64(time.Second))
}

// writeLoop writes what is queued for c.
func (s *Server) writeLoop(c *conn) {
	defer close(c.gone)
	for {
		s.mu.Lock()
		if c.pause != nil {
			if !s.park(c) {
				return
			}
			continue
		}
		if len(c.out) == 0 {
			dead := c.dead
			s.mu.Unlock()
			if dead {
				c.c.Close()
				return
			}
			<-c.wake
			continue
		}
		data, dead := c.out, c.dead
		c.writing = len(data)
		s.mu.Unlock()
		if dead {
			// The last words (an ERROR) get a moment, not forever.
			bye := c.bye
			if bye == 0 {
				bye = 2 * time.Second
			}
			c.c.SetWriteDeadline(time.Now().Add(bye))
		}
		n, err := c.c.Write(data)
		s.mu.Lock()
		c.writing = 0
		c.out = c.out[n:]
		c.inherited -= min(n, c.inherited)
		if len(c.out) == 0 {
			c.out = nil
		}
		c.bytesOut += uint64(n)
		switch {
		case err == nil, c.pause != nil:
		case c.dead:
			s.mu.Unlock()
			c.c.Close()
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			// A pause that was withdrawn left its deadline: try again.
		default:
			s.drop(c, "Write error")
			s.flushDrops()
		}
		s.mu.Unlock()
	}
}

// park stops the calling goroutine for a pause. s.mu is held on entry and
// released. It reports whether to go on (false: the connection moved).
func (s *Server) park(c *conn) bool {
	p := c.pause
	p.parked++
	if p.parked == 2 {
		close(p.done)
	}
	s.mu.Unlock()
	<-p.verdict
	return p.stay
}

// send queues one line for c, cut to MaxLine. A client whose queue is full
// is disconnected once the current handler is done.
func (s *Server) send(c *conn, m Message) {
	if c.dead || c.overflow {
		return
	}
	line := m.String()
	if len(line) > MaxLine-2 {
		line = line[:MaxLine-2]
	}
	if len(c.out)-c.inherited+len(line)+2 > s.Config.MaxSendQ {
		c.overflow = true
		s.drops = append(s.drops, c)
		return
	}
	c.out = append(append(c.out, line...), '\r', '\n')
	notify(c.wake)
}

func (s *Server) flushDrops() {
	for len(s.drops) > 0 {
		c := s.drops[0]
		s.drops = s.drops[1:]
		s.drop(c, "SendQ exceeded")
	}
	s.drops = nil
}

// drop disconnects c: its peers see it quit, it gets an ERROR, and its
// writer closes the socket once that is written.
func (s *Server) drop(c *conn, reason string) {
	if c.dead {
		return
	}
	if c.registered {
		s.quit(c, reason)
	}
	c.dead = true
	delete(s.conns, c)
	if c.overflow {
		// Never to be written: the client does not read. What the writer
		// holds stays, so that it can account for it.
		c.out = c.out[:c.writing:c.writing]
		c.inherited = min(c.inherited, c.writing)
	}
	bye := Message{Command: "ERROR", Params: []string{"Closing Link: " + c.host + " (" + reason + ")"}}
	c.out = append(append(c.out, bye.String()...), '\r', '\n')
	notify(c.wake)
	notify(c.kick)
}

// quit removes a registered client from the shared state and tells its
// peers.
func (s *Server) quit(c *conn, reason string) {
	m := Message{Prefix: c.prefix(), Command: "QUIT", Params: []string{reason}}
	for _, p := range s.peers(c) {
		s.send(p, m)
	}
	s.forget(c)
}

// forget removes c from the shared state, silently.
func (s *Server) forget(c *conn) {
	for ch := range c.chans {
		ch.remove(c)
		if len(ch.members) == 0 {
			delete(s.chans, fold(ch.name))
		}
	}
	c.chans = map[*channel]struct{}{}
	if c.registered && s.nicks[fold(c.nick)] == c {
		delete(s.nicks, fold(c.nick))
	}
	c.registered = false
}

// peers lists the clients sharing a channel with c, c excluded.
func (s *Server) peers(c *conn) []*conn {
	seen := map[*conn]struct{}{c: {}}
	var out []*conn
	for ch := range c.chans {
		for m := range ch.members {
			if _, ok := seen[m]; !ok {
				seen[m] = struct{}{}
				out = append(out, m)
			}
		}
	}
	return out
}

func (c *conn) prefix() string { return c.nick + "!" + c.user + "@" + c.host }

// pinger PINGs silent clients and disconnects those that do not answer.
func (s *Server) pinger() {
	tick := min(s.Config.PingInterval, s.Config.PingTimeout) / 4
	tick = max(tick, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		if s.frozen {
			s.mu.Unlock()
			continue
		}
		now := time.Now()
		for c := range s.conns {
			switch {
			case !c.pingSent.IsZero():
				if now.Sub(c.pingSent) > s.Config.PingTimeout {
					s.drop(c, fmt.Sprintf("Ping timeout: %d seconds", int(s.Config.PingTimeout.Seconds())))
				}
			case now.Sub(c.lastActive) > s.Config.PingInterval:
				c.pingSent = now
				s.send(c, Message{Command: "PING", Params: []string{s.Config.ServerName}})
			}
		}
		s.flushDrops()
		s.mu.Unlock()
	}
}
