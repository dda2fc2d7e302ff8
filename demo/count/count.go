// Package count is the demo's third service, a line counter: every line a
// client sends comes back numbered, "1 hello", "2 again", the number
// counting the connection's lines since it opened. The count is state of
// the connection alone, so a hand-off must carry it: a client that
// reads "41 ..." before the switch reads "42 ..." after it.
//
// It is built like echo: one goroutine per connection, paused through a
// handoff.Pauser, its snapshot the line count, the line not yet ended and
// the answer not yet written.
package count

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/sockshift/sockshift/demo/internal/tcpserve"
	"github.com/sockshift/sockshift/handoff"
	"github.com/sockshift/sockshift/handoff/wire"
)

// Name is the service's name in hand-offs.
const Name = "count"

// MaxLine is the longest line: a longer one is counted and answered in
// pieces of MaxLine bytes, so a client cannot grow a connection's state
// without bound.
const MaxLine = 4 << 10

// maxPending bounds a snapshot's unwritten answer: what one read yields
// (each byte at most a line of its own) plus what a source's kernel had not
// sent yet.
const maxPending = 64 << 20

const readSize = 4 << 10

// Server serves line-counting connections. The zero value is ready to use.
type Server struct {
	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	pauser handoff.Pauser
}

var (
	_ handoff.Service     = (*Server)(nil)
	_ handoff.ConnChecker = (*Server)(nil)
)

// ConnInfo describes one live connection.
type ConnInfo struct {
	Client   string
	Local    string
	Lines    uint64 // lines counted so far
	BytesIn  uint64
	BytesOut uint64
}

// Name implements handoff.Service.
func (s *Server) Name() string { return Name }

// Serve accepts connections on ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	return tcpserve.Serve(Name, ln, func(tc *net.TCPConn) { s.start(&conn{c: tc}) })
}

// Close ends every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.CloseConnections()
	return nil
}

// CloseConnections ends every live connection and keeps serving new ones.
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
		out = append(out, ConnInfo{Client: c.c.RemoteAddr().String(), Local: c.c.LocalAddr().String(),
			Lines: c.st.lines, BytesIn: c.st.in, BytesOut: c.st.out})
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

func (s *Server) loop(c *conn) {
	buf := make([]byte, readSize)
	for {
		err := c.step(buf)
		if err == nil {
			continue
		}
		v := c.gate.Check(err)
		if v == handoff.Retry {
			continue
		}
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		if v != handoff.Moved { // a moved socket is the library's to close
			c.c.Close()
		}
		return
	}
}

// state is what a connection carries from host to host.
type state struct {
	lines   uint64 // lines answered
	line    []byte // the line read so far, not yet ended
	pending []byte // answers not yet written
	in, out uint64 // bytes read, bytes written
}

// conn is one connection; only its loop changes st, under mu, so that a
// snapshot (taken while the loop is paused) and Connections see it whole.
type conn struct {
	c    *net.TCPConn
	gate *handoff.Gate
	mu   sync.Mutex
	st   state
}

// step writes what is pending, or reads and answers every line ended.
func (c *conn) step(buf []byte) error {
	c.mu.Lock()
	pending := c.st.pending
	c.mu.Unlock()
	if len(pending) > 0 {
		n, err := c.c.Write(pending)
		c.mu.Lock()
		c.st.pending = c.st.pending[n:]
		c.st.out += uint64(n)
		c.mu.Unlock()
		return err
	}
	n, err := c.c.Read(buf)
	c.mu.Lock()
	c.st.in += uint64(n)
	c.st.take(buf[:n])
	c.mu.Unlock()
	return err
}

// take adds bytes read to the line, and an answer for each line ended.
func (st *state) take(b []byte) {
	for _, ch := range b {
		if ch != '\n' {
			st.line = append(st.line, ch)
			if len(st.line) < MaxLine {
				continue
			}
		}
		st.lines++
		st.pending = strconv.AppendUint(st.pending, st.lines, 10)
		st.pending = append(st.pending, ' ')
		st.pending = append(st.pending, st.line...)
		st.pending = append(st.pending, '\n')
		st.line = st.line[:0]
	}
}

func (c *conn) snapshot() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return encodeState(c.st)
}

// Quiesce implements handoff.Service.
func (s *Server) Quiesce(ctx context.Context) (handoff.Paused, error) {
	p, err := s.pauser.Pause(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("count: %w", err)
	}
	return p, nil
}

// Adopt implements handoff.Service: restored connections count on from
// their snapshots; bytes the source's kernel never sent go out first.
func (s *Server) Adopt(_ []byte, conns []handoff.Adopted) error {
	var errs []error
	for _, a := range conns {
		st, err := decodeState(a.State)
		if err != nil {
			errs = append(errs, fmt.Errorf("count: connection %v: %w", a.Conn.RemoteAddr(), err))
			a.Conn.Close()
			continue
		}
		// Unsent bytes were counted as written at the source; they are
		// counted again when written here.
		st.out -= min(st.out, uint64(len(a.Unsent)))
		st.pending = append(append([]byte{}, a.Unsent...), st.pending...)
		s.start(&conn{c: a.Conn, st: st})
	}
	return errors.Join(errs...)
}

// CheckConn implements handoff.ConnChecker.
func (s *Server) CheckConn(b []byte) error {
	if _, err := decodeState(b); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	return nil
}

const stateVersion = 1

func encodeState(st state) []byte {
	var e wire.Encoder
	e.U8(stateVersion)
	e.U64(st.lines)
	e.Bytes(st.line)
	e.Bytes(st.pending)
	e.U64(st.in)
	e.U64(st.out)
	return e.Data()
}

func decodeState(b []byte) (state, error) {
	var st state
	d := wire.NewDecoder(b)
	if v := d.U8(); d.Err() == nil && v != stateVersion {
		return st, fmt.Errorf("snapshot version %d, want %d", v, stateVersion)
	}
	st.lines = d.U64()
	st.line = d.Bytes(MaxLine - 1)
	st.pending = d.Bytes(maxPending)
	st.in = d.U64()
	st.out = d.U64()
	if err := d.Finish(); err != nil {
		return state{}, fmt.Errorf("snapshot: %w", err)
	}
	return st, nil
}
