package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"
)

// Pauser stops the connections of a server that runs one goroutine per
// connection at a clean point, for Service.Quiesce, and resumes or lets go
// of each one as the hand-off decides. The zero value is ready to use.
//
// Each connection's goroutine takes a Gate with Add and passes every
// error of its Read and Write to Gate.Check, which says what to do:
//
//	g := pauser.Add(conn, snapshot)
//	for {
//		n, err := conn.Read(buf)
//		handle(buf[:n]) // every byte read is handled before the next Check
//		if err != nil {
//			switch g.Check(err) {
//			case handoff.Retry: // paused and resumed here: read on
//				continue
//			case handoff.Moved: // the connection is on the target now
//				return
//			default: // handoff.Failed: a real error, the gate is gone
//				conn.Close()
//				return
//			}
//		}
//	}
//
// Pause sets a deadline in the past on every connection, which wakes a
// blocked Read or Write at once; the goroutine reports itself parked in
// Check and waits there for the verdict. The snapshot function of each
// connection is called while it is parked: whatever it returns is what the
// target's Adopt gets as Adopted.State.
//
// A pause moves the connection's deadlines, so the application sets its
// own through the Gate (Gate.SetReadDeadline and the others): they are
// given back after a pause, and one that expires makes Check say Failed,
// as the timeout would end the connection without the library.
type Pauser struct {
	mu        sync.Mutex
	gates     map[*Gate]struct{}
	listeners []*Listener
	pausing   bool    // from Pause until Settle (or a failed Pause)
	late      []*Gate // added while pausing: paused at once, resumed at the end
}

// Verdict is what a connection's goroutine does after an error (Gate.Check).
type Verdict int

const (
	// Retry: the error was a pause and the connection goes on here; retry
	// the Read or Write (a Write may have written part of its bytes).
	Retry Verdict = iota
	// Moved: the connection now belongs to the target: return without
	// touching the socket (the library closes it).
	Moved
	// Failed: a real error; the gate is forgotten. Close the connection.
	Failed
)

func (v Verdict) String() string {
	switch v {
	case Retry:
		return "retry"
	case Moved:
		return "moved"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Gate is one connection's place in a Pauser.
type Gate struct {
	p        *Pauser
	conn     *net.TCPConn
	snapshot func() []byte

	mu      sync.Mutex
	rd, wd  time.Time // the application's own deadlines
	pausing bool
	waiting bool          // its goroutine sits in Check
	gone    bool          // its goroutine ended on a real error while pausing
	parked  chan struct{} // closed once it sits there
	verdict chan bool     // true: stay here
}

// Add registers a connection; snapshot (nil for none) returns its state
// for the target while it is paused. A connection added during a pause is
// paused at once, and goes on here when the pause ends: it is not among
// the connections the hand-off moves (Pauser.Listen keeps a service's own
// accepts out of a pause).
func (p *Pauser) Add(c *net.TCPConn, snapshot func() []byte) *Gate {
	g := &Gate{p: p, conn: c, snapshot: snapshot, verdict: make(chan bool, 1)}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pausing {
		g.pausing, g.parked = true, make(chan struct{})
		c.SetDeadline(time.Unix(1, 0))
		p.late = append(p.late, g)
		return g
	}
	p.register(g)
	return g
}

// register adds g to the gates a pause stops; p.mu is held.
func (p *Pauser) register(g *Gate) {
	if p.gates == nil {
		p.gates = map[*Gate]struct{}{}
	}
	p.gates[g] = struct{}{}
}

// SetReadDeadline sets the connection's read deadline (see Pauser).
func (g *Gate) SetReadDeadline(t time.Time) error { return g.setDeadline(&t, nil) }

// SetWriteDeadline sets the connection's write deadline (see Pauser).
func (g *Gate) SetWriteDeadline(t time.Time) error { return g.setDeadline(nil, &t) }

// SetDeadline sets both deadlines (see Pauser).
func (g *Gate) SetDeadline(t time.Time) error { return g.setDeadline(&t, &t) }

func (g *Gate) setDeadline(rd, wd *time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if rd != nil {
		g.rd = *rd
	}
	if wd != nil {
		g.wd = *wd
	}
	if g.pausing {
		return nil // given to the connection when the pause ends here
	}
	var errs []error
	if rd != nil {
		errs = append(errs, g.conn.SetReadDeadline(*rd))
	}
	if wd != nil {
		errs = append(errs, g.conn.SetWriteDeadline(*wd))
	}
	return errors.Join(errs...)
}

// expired reports whether one of the application's deadlines has passed.
func (g *Gate) expired() bool {
	now := time.Now()
	return (!g.rd.IsZero() && !now.Before(g.rd)) || (!g.wd.IsZero() && !now.Before(g.wd))
}

// Remove forgets a connection that ended on its own.
func (g *Gate) Remove() {
	g.p.mu.Lock()
	delete(g.p.gates, g)
	g.p.mu.Unlock()
}

// Len returns how many connections the Pauser holds.
func (p *Pauser) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.gates)
}

// Check is called by the connection's goroutine with the error of a Read
// or Write, and says what to do next (see Pauser). It blocks while the
// connection is paused.
func (g *Gate) Check(err error) Verdict {
	if err == nil {
		return Retry
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		g.Remove()
		g.mu.Lock()
		if g.pausing && !g.gone {
			// A pause waits for this goroutine: it will not come.
			g.gone = true
			close(g.parked)
		}
		g.mu.Unlock()
		return Failed
	}
	g.mu.Lock()
	if !g.pausing {
		if g.expired() {
			// The application's own deadline: as without the library.
			g.mu.Unlock()
			g.Remove()
			return Failed
		}
		// A pause that was withdrawn left its deadline behind.
		g.mu.Unlock()
		return Retry
	}
	if g.gone {
		g.mu.Unlock()
		return Failed
	}
	g.waiting = true
	close(g.parked)
	g.mu.Unlock()
	if stay := <-g.verdict; !stay {
		g.Remove()
		return Moved
	}
	return Retry
}

// Pause stops every connection at its next Check, and the accept side of
// every Listener of the Pauser, and returns the connections as a Paused.
// shared (nil for none) is called once all are stopped, for the service's
// shared snapshot: what it returns is consistent with every connection's.
// By ctx's deadline every connection has stopped, or none stays stopped
// and the error says how many did.
func (p *Pauser) Pause(ctx context.Context, shared func() []byte) (Paused, error) {
	p.mu.Lock()
	p.pausing = true
	listeners := slices.Clone(p.listeners)
	p.mu.Unlock()
	// The accept side first: from here the application gets no new
	// connection to Add.
	for _, l := range listeners {
		l.pause()
	}
	p.mu.Lock()
	gates := make([]*Gate, 0, len(p.gates))
	for g := range p.gates {
		gates = append(gates, g)
	}
	p.mu.Unlock()
	pg := &pausedGates{p: p, gates: gates, listeners: listeners}
	for _, g := range gates {
		g.mu.Lock()
		g.pausing, g.parked = true, make(chan struct{})
		g.mu.Unlock()
		// A deadline in the past wakes a blocked Read or Write at once.
		g.conn.SetDeadline(time.Unix(1, 0))
	}
	for i, g := range gates {
		select {
		case <-g.parked:
		case <-ctx.Done():
			pg.end(func(*net.TCPConn) bool { return false })
			return nil, fmt.Errorf("handoff: pause: %d of %d connections stopped: %w", i, len(gates), ctx.Err())
		}
	}
	live := gates[:0]
	for _, g := range gates {
		g.mu.Lock()
		if !g.gone {
			live = append(live, g)
		}
		g.mu.Unlock()
	}
	pg.gates = live
	if shared != nil {
		pg.shared = shared()
	}
	return pg, nil
}

// release ends g's pause; stay says whether it goes on here.
func (g *Gate) release(stay bool) {
	g.mu.Lock()
	waiting := g.waiting
	g.pausing, g.waiting, g.gone = false, false, false
	rd, wd := g.rd, g.wd
	g.mu.Unlock()
	if stay {
		// The application's deadlines again (none: none).
		g.conn.SetReadDeadline(rd)
		g.conn.SetWriteDeadline(wd)
	}
	if waiting {
		g.verdict <- stay
	}
}

// pausedGates is a Pauser's Paused.
type pausedGates struct {
	p         *Pauser
	gates     []*Gate
	listeners []*Listener
	shared    []byte
	late      []*net.TCPConn // from lateConns
	lateOf    map[*net.TCPConn]*Listener
}

// lateConns returns the connections the service's listeners accepted
// during the pause (see Listener); the source calls it once the address is
// gone, and freezes them with the others.
func (p *pausedGates) lateConns() ([]*net.TCPConn, error) {
	var errs []error
	for _, l := range p.listeners {
		conns, err := l.take()
		errs = append(errs, err)
		for _, c := range conns {
			if p.lateOf == nil {
				p.lateOf = map[*net.TCPConn]*Listener{}
			}
			p.lateOf[c] = l
			p.late = append(p.late, c)
		}
	}
	return p.late, errors.Join(errs...)
}

func (p *pausedGates) Shared() []byte { return p.shared }

func (p *pausedGates) Conns() []PausedConn {
	out := make([]PausedConn, len(p.gates))
	for i, g := range p.gates {
		out[i] = PausedConn{Conn: g.conn}
		if g.snapshot != nil {
			out[i].State = g.snapshot()
		}
	}
	return out
}

func (p *pausedGates) Settle(moved func(*net.TCPConn) bool) { p.end(moved) }

// end ends the pause: each connection moved or goes on here, those added
// meanwhile go on, and the listeners accept again, handing out first the
// connections of their queues that stayed.
func (p *pausedGates) end(moved func(*net.TCPConn) bool) {
	for _, g := range p.gates {
		g.release(!moved(g.conn))
	}
	p.gates = nil
	stay := map[*Listener][]*net.TCPConn{}
	for _, c := range p.late {
		if !moved(c) { // the application takes it from Accept
			stay[p.lateOf[c]] = append(stay[p.lateOf[c]], c)
		}
	}
	p.late = nil
	p.p.mu.Lock()
	late := p.p.late
	p.p.late, p.p.pausing = nil, false
	for _, g := range late {
		p.p.register(g)
	}
	p.p.mu.Unlock()
	for _, g := range late {
		g.release(true)
	}
	for _, l := range p.listeners {
		l.resume(stay[l]...)
	}
}
