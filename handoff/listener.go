package handoff

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// Listener is a service's listener whose accept side the hand-offs own
// (Pauser.Listen). Outside a hand-off it is the listener it wraps. While
// its Pauser is paused, Accept hands out no connection and waits for the
// pause to end. The connections the kernel accepts meanwhile, up to the
// moment the source removes the address (after which no handshake can
// complete here), move with the others: the library freezes them after
// that release and the target's Adopt gets them with State nil, to serve
// as new connections. A SYN that comes after the release reaches the
// target, whose own listener answers it. After a rollback, or if the
// service stays, they come out of Accept once the pause ends.
//
// Its methods may be called from any goroutine.
type Listener struct {
	ln *net.TCPListener
	p  *Pauser

	mu        sync.Mutex
	accepting int           // goroutines inside the wrapped Accept
	idle      chan struct{} // closed when accepting falls to 0 while paused
	paused    bool
	resumed   chan struct{}  // closed when the pause ends
	held      []*net.TCPConn // accepted during the pause
	backlog   []*net.TCPConn // handed out first after it
}

var _ net.Listener = (*Listener)(nil)

// Listen wraps ln so that the Pauser's pauses own its accept side (see
// Listener). Accept on the Listener, never on ln.
func (p *Pauser) Listen(ln *net.TCPListener) *Listener {
	l := &Listener{ln: ln, p: p}
	p.mu.Lock()
	p.listeners = append(p.listeners, l)
	p.mu.Unlock()
	return l
}

// Accept waits for and returns the next connection (a *net.TCPConn).
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP waits for and returns the next connection.
func (l *Listener) AcceptTCP() (*net.TCPConn, error) {
	for {
		l.mu.Lock()
		for l.paused {
			wait := l.resumed
			l.mu.Unlock()
			<-wait
			l.mu.Lock()
		}
		if len(l.backlog) > 0 {
			c := l.backlog[0]
			l.backlog = l.backlog[1:]
			l.mu.Unlock()
			return c, nil
		}
		l.accepting++
		l.mu.Unlock()

		c, err := l.ln.AcceptTCP()

		l.mu.Lock()
		l.accepting--
		if l.paused {
			// Taken as the pause began (its deadline woke us): the
			// pause's, like those still queued.
			if c != nil {
				l.held = append(l.held, c)
			}
			if l.accepting == 0 && l.idle != nil {
				close(l.idle)
				l.idle = nil
			}
			l.mu.Unlock()
			continue
		}
		l.mu.Unlock()
		if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			continue // the deadline of a pause that has ended
		}
		if errors.Is(err, net.ErrClosed) {
			l.forget() // closed under us: pauses need it no more
		}
		return c, err
	}
}

// Close closes the wrapped listener; Accept then fails.
func (l *Listener) Close() error {
	l.forget()
	err := l.ln.Close()
	l.resume()
	return err
}

// forget takes the Listener out of its Pauser's pauses.
func (l *Listener) forget() {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	for i, x := range l.p.listeners {
		if x == l {
			l.p.listeners = append(l.p.listeners[:i], l.p.listeners[i+1:]...)
			return
		}
	}
}

// Addr returns the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// pause stops handing out connections, and wakes an Accept under way.
func (l *Listener) pause() {
	l.mu.Lock()
	l.paused = true
	l.resumed = make(chan struct{})
	l.mu.Unlock()
	// A deadline in the past wakes a blocked Accept at once.
	l.ln.SetDeadline(time.Unix(1, 0))
}

// take returns every connection accepted since the pause began: those an
// Accept under way took, and those waiting in the kernel's queue. Once
// the address is gone from this host, nothing more can join them.
func (l *Listener) take() ([]*net.TCPConn, error) {
	l.mu.Lock()
	var idle chan struct{}
	if l.accepting > 0 {
		idle = make(chan struct{})
		l.idle = idle
	}
	l.mu.Unlock()
	if idle != nil {
		<-idle // the deadline set at the pause wakes them
	}
	queued, err := acceptQueued(l.ln)
	if errors.Is(err, net.ErrClosed) {
		err = nil // closed meanwhile: nothing queued is ours
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append(l.held, queued...)
	l.held = nil
	return out, err
}

// resume hands out connections again, first stay (connections of the
// pause that are still here) and those it still held.
func (l *Listener) resume(stay ...*net.TCPConn) {
	l.ln.SetDeadline(time.Time{})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.backlog = append(append(l.backlog, stay...), l.held...)
	l.held = nil
	if l.paused {
		l.paused = false
		close(l.resumed)
	}
}
