package echo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/sockshift/sockshift/demo/internal/tcpserve"
	"github.com/sockshift/sockshift/handoff"
	"github.com/sockshift/sockshift/handoff/wire"
)

// Name is the service's name in hand-offs.
const Name = "echo"

// bufSize is the most one read takes; small, since a server may hold many
// thousands of connections. A connection's buffer starts at minBufSize
// and doubles while reads fill it: ten thousand idle connections then hold
// 5 MB, not 160 MB that a target would allocate (and fault in) while it
// resumes them all.
const (
	bufSize    = 16 << 10
	minBufSize = 512
)

// maxPending bounds a snapshot's pending bytes: one read, plus what a
// source kernel had not sent yet (its send buffer) when it came here.
const maxPending = 64 << 20

// Server serves echo connections. The zero value is ready to use.
type Server struct {
	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	pauser handoff.Pauser
}

var (
	_ handoff.Service     = (*Server)(nil)
	_ handoff.ConnChecker = (*Server)(nil) // the target checks snapshots before the decision
)

// ConnInfo describes one live connection.
type ConnInfo struct {
	Client   string
	Local    string // the address the client connected to
	BytesIn  uint64 // read from the client
	BytesOut uint64 // echoed back
}

// Name implements handoff.Service.
func (s *Server) Name() string { return Name }

// Serve accepts connections on ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	// Through the Pauser: a client that connects during a hand-off moves
	// with the others (handoff.Listener).
	if tl, ok := ln.(*net.TCPListener); ok {
		ln = s.pauser.Listen(tl)
	}
	return tcpserve.Serve("echo", ln, func(tc *net.TCPConn) { s.start(&conn{c: tc}) })
}

// Close ends every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.c.Close()
	}
	return nil
}

// CloseConnections ends every live connection (with a FIN) and keeps
// serving new ones: what a server without hand-off does when it goes away.
func (s *Server) CloseConnections() int {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		c.c.Close()
	}
	return len(conns)
}

// Connections lists the live connections.
func (s *Server) Connections() []ConnInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ConnInfo, 0, len(s.conns))
	for c := range s.conns {
		c.mu.Lock()
		out = append(out, ConnInfo{Client: c.c.RemoteAddr().String(), Local: c.c.LocalAddr().String(), BytesIn: c.in, BytesOut: c.out})
		c.mu.Unlock()
	}
	return out
}

func (s *Server) start(c *conn) {
	c.gate = s.pauser.Add(c.c, c.snapshot)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.gate.Remove()
		c.c.Close()
		return
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	go s.loop(c)
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// conn is one echo connection and its snapshot-able state.
type conn struct {
	c    *net.TCPConn
	buf  []byte // the loop's reads; only the loop touches it
	gate *handoff.Gate

	mu      sync.Mutex
	pending []byte // read, not yet written back
	in, out uint64
}

// loop serves c until its connection ends or moves away. Its stack stays
// small (the work is in step, the read buffer on the heap): the goroutine
// then fits in its first stack, and a target resuming thousands of
// connections does not grow (copy) thousands of stacks on the way.
func (s *Server) loop(c *conn) {
	for {
		err := c.step()
		if err == nil {
			continue
		}
		switch c.gate.Check(err) {
		case handoff.Retry: // paused, and stays here
		case handoff.Moved: // the hand-off closes the socket
			s.forget(c)
			return
		default:
			s.forget(c)
			c.c.Close()
			return
		}
	}
}

// step writes back what is pending, or reads more into c.buf, which
// doubles while reads fill it.
func (c *conn) step() error {
	c.mu.Lock()
	pending := c.pending
	c.mu.Unlock()
	if len(pending) > 0 {
		n, err := c.c.Write(pending)
		c.mu.Lock()
		c.pending = c.pending[n:]
		c.out += uint64(n)
		c.mu.Unlock()
		return err
	}
	if c.buf == nil {
		c.buf = make([]byte, minBufSize)
	}
	n, err := c.c.Read(c.buf)
	c.mu.Lock()
	// pending aliases buf: the next read comes only once it is all
	// written, and a copy per read was garbage at the stream's rate.
	c.pending = c.buf[:n]
	c.in += uint64(n)
	c.mu.Unlock()
	if n == len(c.buf) && n < bufSize {
		c.buf = make([]byte, min(2*n, bufSize))
	}
	return err
}

// snapshot is the connection's state for the target, taken while paused.
func (c *conn) snapshot() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return encodeState(c.pending, c.in, c.out)
}

// Quiesce implements handoff.Service: every connection stops between a
// read and its echo, or inside a write (what is left is in its snapshot).
func (s *Server) Quiesce(ctx context.Context) (handoff.Paused, error) {
	p, err := s.pauser.Pause(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	return p, nil
}

// Adopt implements handoff.Service: restored connections go on from their
// snapshots; bytes the source's kernel never sent go out first.
func (s *Server) Adopt(shared []byte, conns []handoff.Adopted) error {
	var errs []error
	for _, a := range conns {
		if a.New { // accepted during the hand-off: a connection like any new one
			s.start(&conn{c: a.Conn})
			continue
		}
		pending, in, out, err := decodeState(a.State)
		if err != nil {
			errs = append(errs, fmt.Errorf("echo: connection %v: %w", a.Conn.RemoteAddr(), err))
			a.Conn.Close()
			continue
		}
		// Unsent bytes were counted as echoed at the source; they are
		// counted again when written here.
		out -= min(out, uint64(len(a.Unsent)))
		c := &conn{c: a.Conn, in: in, out: out}
		c.pending = append(append([]byte{}, a.Unsent...), pending...)
		s.start(c)
	}
	return errors.Join(errs...)
}

// Snapshot of one connection: version, pending bytes, counters.
const stateVersion = 1

func encodeState(pending []byte, in, out uint64) []byte {
	var e wire.Encoder
	e.U8(stateVersion)
	e.Bytes(pending)
	e.U64(in)
	e.U64(out)
	return e.Data()
}

func decodeState(b []byte) (pending []byte, in, out uint64, err error) {
	d := wire.NewDecoder(b)
	if v := d.U8(); d.Err() == nil && v != stateVersion {
		return nil, 0, 0, fmt.Errorf("snapshot version %d, want %d", v, stateVersion)
	}
	pending = d.Bytes(maxPending)
	in = d.U64()
	out = d.U64()
	if err := d.Finish(); err != nil {
		return nil, 0, 0, fmt.Errorf("snapshot: %w", err)
	}
	return pending, in, out, nil
}

// CheckConn reports whether Adopt would take a connection with this
// snapshot: a target checks it before it reports its sockets rebuilt,
// so a snapshot it would refuse rolls the hand-off back instead of
// losing the connection after the commit.
func (s *Server) CheckConn(state []byte) error {
	if _, _, _, err := decodeState(state); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	return nil
}
