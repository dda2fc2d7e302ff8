package chat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/sockshift/sockshift/handoff"
)

// Quiesce implements handoff.Service: it freezes the shared state and
// parks every connection's reader and writer between lines.
func (s *Server) Quiesce(ctx context.Context) (handoff.Paused, error) {
	s.setup()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("chat: quiesce: server closed")
	}
	s.frozen = true
	p := &paused{s: s}
	for c := range s.conns {
		c.pause = &pauseState{done: make(chan struct{}), verdict: make(chan struct{})}
		p.conns = append(p.conns, c)
		p.states = append(p.states, c.pause)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	for _, c := range p.conns {
		// A deadline in the past wakes a blocked Read or Write at once.
		c.c.SetDeadline(time.Unix(1, 0))
		notify(c.wake)
		notify(c.kick)
	}
	for i, ps := range p.states {
		select {
		case <-ps.done:
		case <-ctx.Done():
			p.resumeAll()
			return nil, fmt.Errorf("chat: quiesce: %d of %d connections paused: %w", i, len(p.states), ctx.Err())
		}
	}
	if err := p.screen(ctx); err != nil {
		p.resumeAll()
		return nil, fmt.Errorf("chat: quiesce: %w", err)
	}
	return p, nil
}

type paused struct {
	s      *Server
	conns  []*conn
	states []*pauseState

	shared []byte   // the shared snapshot, checked
	snaps  [][]byte // per connection, checked
	// Dropped lists the clients dropped before the freeze, and why.
	dropped []string
}

// screen takes the snapshots and decodes each as the target will, before
// anything is frozen: a refusal after the commit would lose a connection.
// A client whose snapshot would be refused is dropped here, with an
// ERROR, and the others move; a shared snapshot that would be refused
// fails the hand-off, and everyone stays.
func (p *paused) screen(ctx context.Context) error {
	s := p.s
	s.mu.Lock()
	var bad []int
	p.snaps = make([][]byte, len(p.conns))
	for i, c := range p.conns {
		p.snaps[i] = c.snapshot().encode()
		if _, err := decodeConn(p.snaps[i]); err != nil {
			bad = append(bad, i)
			p.dropped = append(p.dropped, fmt.Sprintf("%v: %v", c.c.RemoteAddr(), err))
		}
	}
	s.mu.Unlock()
	if len(bad) > 0 {
		p.dropBad(ctx, bad)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(bad) > 0 {
		// The others heard them quit: their queues changed.
		for i, c := range p.conns {
			p.snaps[i] = c.snapshot().encode()
		}
	}
	p.shared = s.sharedSnapshot().encode()
	if _, err := decodeShared(p.shared); err != nil {
		return fmt.Errorf("the target would refuse the shared snapshot: %w", err)
	}
	return nil
}

// dropBad ends the pause of the connections at the indexes bad, drops
// them, and waits a moment for their ERROR to go out and their sockets to
// close: after the freeze their address is gone.
func (p *paused) dropBad(ctx context.Context, bad []int) {
	s := p.s
	s.mu.Lock()
	var gone []*conn
	var states []*pauseState
	for _, i := range bad {
		c := p.conns[i]
		c.pause = nil
		c.bye = 200 * time.Millisecond
		p.states[i].stay = true
		s.drop(c, "Snapshot over the hand-off's bounds")
		gone = append(gone, c)
		states = append(states, p.states[i])
	}
	s.flushDrops()
	for _, i := range slices.Backward(bad) {
		p.conns = slices.Delete(p.conns, i, i+1)
		p.states = slices.Delete(p.states, i, i+1)
		p.snaps = slices.Delete(p.snaps, i, i+1)
	}
	s.mu.Unlock()
	for i, c := range gone {
		c.c.SetDeadline(time.Time{})
		close(states[i].verdict)
	}
	// One wait for them all, however many: the hand-off is paused.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	for _, c := range gone {
		select {
		case <-c.gone:
		case <-wctx.Done():
		}
		c.c.Close()
	}
}

// Shared implements handoff.Paused: every registered client and channel.
func (p *paused) Shared() []byte { return p.shared }

// sharedSnapshot is the state every connection shares. s.mu is held.
func (s *Server) sharedSnapshot() *sharedState {
	st := &sharedState{MaxUsers: uint32(min(max(s.maxUsers, len(s.nicks)), maxSnapUsers))}
	for _, c := range s.nicks {
		st.Users = append(st.Users, userSnap{Nick: c.nick, User: c.user, Real: c.real, Host: c.host, Away: c.away, Invisible: c.invisible, Oper: c.oper})
	}
	slices.SortFunc(st.Users, func(a, b userSnap) int { return strings.Compare(a.Nick, b.Nick) })
	for _, ch := range s.chans {
		cs := chanSnap{Name: ch.name, Topic: ch.topic, TopicBy: ch.topicBy, TopicAt: ch.topicAt, History: ch.history,
			Created: ch.created, Modes: ch.modes, Key: ch.key, Limit: uint32(ch.limit), Invites: ch.invites}
		for m := range ch.members {
			cs.Members = append(cs.Members, m.nick)
			if ch.isOp(m) {
				cs.Ops = append(cs.Ops, m.nick)
			}
			if _, v := ch.voices[m]; v {
				cs.Voices = append(cs.Voices, m.nick)
			}
		}
		slices.Sort(cs.Members)
		slices.Sort(cs.Ops)
		slices.Sort(cs.Voices)
		st.Channels = append(st.Channels, cs)
	}
	slices.SortFunc(st.Channels, func(a, b chanSnap) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// snapshot is c's own state. s.mu is held and c's reader is parked, so
// its fields are still.
func (c *conn) snapshot() *connState {
	return &connState{
		Registered: c.registered, Nick: c.nick, User: c.user, Real: c.real, CapHeld: c.capHeld, PassOK: c.passOK,
		In: c.in, Discard: c.discard, Skipped: uint32(c.skipped), LongLine: uint32(c.longLine),
		Out: c.out, Inherited: uint32(c.inherited),
		PingOutstanding: !c.pingSent.IsZero(), Junk: uint32(c.junk),
		BytesIn: c.bytesIn, BytesOut: c.bytesOut,
	}
}

// Conns implements handoff.Paused.
func (p *paused) Conns() []handoff.PausedConn {
	out := make([]handoff.PausedConn, len(p.conns))
	for i, c := range p.conns {
		out[i] = handoff.PausedConn{Conn: c.c, State: p.snaps[i]}
	}
	return out
}

// Settle implements handoff.Paused. Clients that moved leave this
// server's state; those that stay here see them quit, as after a netsplit
// (with nobody left behind, nobody is told anything).
func (p *paused) Settle(moved func(*net.TCPConn) bool) {
	stay := make([]bool, len(p.conns))
	for i, c := range p.conns {
		stay[i] = !moved(c.c)
	}
	p.finish(stay)
}

// finish ends the pause; stay says, per paused connection, whether it
// goes on here.
func (p *paused) finish(stay []bool) {
	s := p.s
	s.mu.Lock()
	var gone []*conn
	for i, c := range p.conns {
		c.pause = nil
		p.states[i].stay = stay[i]
		if !stay[i] {
			delete(s.conns, c)
			c.dead = true // before the quits below: it hears nothing more
			gone = append(gone, c)
		}
	}
	// With nobody left here to tell, they go silently: telling is a walk
	// of each one's channels, thousands of times over in a bulk hand-off.
	for _, c := range gone {
		if c.registered && len(s.conns) > 0 {
			s.quit(c, "Handed off to another server")
		} else {
			s.forget(c)
		}
	}
	s.frozen = false
	s.thawed = time.Now()
	late := s.late
	s.late = nil
	s.cond.Broadcast()
	s.mu.Unlock()
	for i, c := range p.conns {
		if stay[i] {
			c.c.SetDeadline(time.Time{})
		}
		close(p.states[i].verdict)
	}
	p.conns, p.states = nil, nil
	s.lateConns(late)
}

// lateWindow is how long after a hand-off an accepted connection's
// address is checked: the kernel may have done its handshake during the
// hand-off, and the listener's queue is drained in moments.
const lateWindow = time.Second

// lateConns lets go of the connections accepted during a hand-off whose
// address left with it. The kernel completes a client's handshake
// whenever the address is here, frozen or not, so a client that connected
// between the pause and the address's release is on this host but in no
// snapshot: its packets now reach the target, which knows nothing of it.
// Kept here, it would wait out the ping timeout as an unregistered
// client (LUSERS' 253) and, once registered nowhere, never be told.
func (s *Server) lateConns(late []*conn) {
	for _, c := range late {
		if !s.gone(c.c.LocalAddr()) {
			continue
		}
		s.mu.Lock()
		if !c.dead {
			c.dead = true
			delete(s.conns, c)
			s.forget(c)
			notify(c.wake)
			notify(c.kick)
		}
		s.mu.Unlock()
		c.c.Close()
	}
}

func (s *Server) gone(a net.Addr) bool {
	if s.addrGone != nil {
		return s.addrGone(a)
	}
	return addrGone(a)
}

// addrGone reports whether a's IP is no longer an address of this host.
// When it cannot tell, it says no.
func addrGone(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok && n.IP.Equal(ta.IP) {
			return false
		}
	}
	return true
}

// resumeAll ends the pause with every connection staying.
func (p *paused) resumeAll() {
	stay := make([]bool, len(p.conns))
	for i := range stay {
		stay[i] = true
	}
	p.finish(stay)
}

// Adopt implements handoff.Service. It rebuilds the shared state first,
// then attaches each connection to its nick; a nick whose connection did
// not come (or collides with a client of this server) quits. Bytes the
// source's kernel never sent go out first.
func (s *Server) Adopt(shared []byte, conns []handoff.Adopted) error {
	s.setup()
	var errs []error
	st, err := decodeShared(shared)
	if err != nil {
		for _, a := range conns {
			a.Conn.Close()
		}
		return fmt.Errorf("chat: adopt %d connections: %w", len(conns), err)
	}
	users := map[string]userSnap{}
	for _, u := range st.Users {
		users[fold(u.Nick)] = u
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		for _, a := range conns {
			a.Conn.Close()
		}
		return errors.New("chat: adopt: server closed")
	}
	attached := map[string]*conn{} // folded nick -> adopted client
	var started, collided []*conn
	for _, a := range conns {
		cs, err := decodeConn(a.State)
		if err != nil {
			errs = append(errs, fmt.Errorf("chat: connection %v: %w", a.Conn.RemoteAddr(), err))
			a.Conn.Close()
			continue
		}
		// A connection moved within one process (tests) still has the
		// pause's deadline; a restored socket has none.
		a.Conn.SetDeadline(time.Time{})
		c := s.newConn(a.Conn)
		c.nick, c.user, c.real = cs.Nick, cs.User, cs.Real
		c.in, c.discard, c.junk = cs.In, cs.Discard, int(cs.Junk)
		c.skipped, c.longLine, c.capHeld, c.passOK = int(cs.Skipped), int(cs.LongLine), cs.CapHeld, cs.PassOK
		c.bytesIn = cs.BytesIn
		// Unsent bytes were counted as written at the source; they are
		// counted again when written here.
		c.bytesOut = cs.BytesOut - min(cs.BytesOut, uint64(len(a.Unsent)))
		c.out = append(append([]byte{}, a.Unsent...), cs.Out...)
		// Neither kernel's unsent bytes count in the queue's bound: the
		// source counted them as written.
		c.inherited = len(a.Unsent) + int(cs.Inherited)
		if len(c.out) == 0 {
			c.out = nil
		}
		if cs.PingOutstanding {
			c.pingSent = time.Now()
		}
		s.conns[c] = struct{}{}
		started = append(started, c)
		if !cs.Registered {
			continue
		}
		key := fold(cs.Nick)
		if u, ok := users[key]; ok {
			c.user, c.real, c.away, c.invisible, c.oper = u.User, u.Real, u.Away, u.Invisible, u.Oper
		}
		if s.nicks[key] != nil || attached[key] != nil {
			collided = append(collided, c)
			continue
		}
		c.registered = true
		s.nicks[key] = c
		attached[key] = c
	}

	// Channels, with the members that came; the others quit below.
	var lost []*conn // stand-ins for users whose connection did not come
	lostBy := map[string]*conn{}
	for _, cs := range st.Channels {
		ch := s.chans[fold(cs.Name)]
		if ch == nil {
			// Its modes come with it; a channel this server has too keeps its own.
			ch = newChannel(cs.Name)
			ch.created, ch.modes, ch.key, ch.limit = cs.Created, cs.Modes, cs.Key, int(cs.Limit)
			ch.invites = slices.Clone(cs.Invites)
		}
		ops, voices := map[string]bool{}, map[string]bool{}
		for _, n := range cs.Ops {
			ops[fold(n)] = true
		}
		for _, n := range cs.Voices {
			voices[fold(n)] = true
		}
		if ch.topic == "" {
			ch.topic, ch.topicBy, ch.topicAt = cs.Topic, cs.TopicBy, cs.TopicAt
		}
		ch.history = append(slices.Clip(cs.History), ch.history...)
		if over := len(ch.history) - s.Config.History; over > 0 {
			ch.history = slices.Delete(ch.history, 0, over)
		}
		for _, nick := range cs.Members {
			c := attached[fold(nick)]
			if c == nil {
				// Told to the channel below, as a quit.
				g := lostBy[fold(nick)]
				if g == nil {
					u := users[fold(nick)]
					g = &conn{nick: u.Nick, user: u.User, host: u.Host, chans: map[*channel]struct{}{}, registered: true, dead: true}
					lostBy[fold(nick)] = g
					lost = append(lost, g)
				}
				ch.members[g] = struct{}{}
				g.chans[ch] = struct{}{}
				continue
			}
			ch.members[c] = struct{}{}
			c.chans[ch] = struct{}{}
			if ops[fold(nick)] {
				ch.ops[c] = struct{}{}
			}
			if voices[fold(nick)] {
				ch.voices[c] = struct{}{}
			}
		}
		s.chans[fold(ch.name)] = ch
	}
	s.maxUsers = max(s.maxUsers, int(st.MaxUsers))
	for _, g := range lost {
		s.quit(g, "Connection lost in hand-off")
	}
	for _, c := range collided {
		s.drop(c, "Nick collision on hand-off")
	}
	if over := len(s.conns) - s.Config.MaxClients; over > 0 {
		errs = append(errs, fmt.Errorf("chat: adopted past the limit: %d clients, at most %d", len(s.conns), s.Config.MaxClients))
	}
	s.flushDrops()
	for _, c := range started {
		s.start(c)
	}
	return errors.Join(errs...)
}
