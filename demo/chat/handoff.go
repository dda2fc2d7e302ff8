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
	return p, nil
}

type paused struct {
	s      *Server
	conns  []*conn
	states []*pauseState
}

// Shared implements handoff.Paused: every registered client and channel.
func (p *paused) Shared() []byte {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	st := &sharedState{}
	for _, c := range s.nicks {
		st.Users = append(st.Users, userSnap{Nick: c.nick, User: c.user, Real: c.real, Host: c.host})
	}
	slices.SortFunc(st.Users, func(a, b userSnap) int { return strings.Compare(a.Nick, b.Nick) })
	for _, ch := range s.chans {
		cs := chanSnap{Name: ch.name, Topic: ch.topic, TopicBy: ch.topicBy, TopicAt: ch.topicAt, History: ch.history}
		for m := range ch.members {
			cs.Members = append(cs.Members, m.nick)
		}
		slices.Sort(cs.Members)
		st.Channels = append(st.Channels, cs)
	}
	slices.SortFunc(st.Channels, func(a, b chanSnap) int { return strings.Compare(a.Name, b.Name) })
	return st.encode()
}

// Conns implements handoff.Paused.
func (p *paused) Conns() []handoff.PausedConn {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]handoff.PausedConn, len(p.conns))
	for i, c := range p.conns {
		// The reader is parked, so its fields are still.
		cs := connState{
			Registered: c.registered, Nick: c.nick, User: c.user, Real: c.real,
			In: c.in, Discard: c.discard, Out: c.out,
			PingOutstanding: !c.pingSent.IsZero(), Junk: uint32(c.junk),
			BytesIn: c.bytesIn, BytesOut: c.bytesOut,
		}
		out[i] = handoff.PausedConn{Conn: c.c, State: cs.encode()}
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
	s.cond.Broadcast()
	s.mu.Unlock()
	for i, c := range p.conns {
		if stay[i] {
			c.c.SetDeadline(time.Time{})
		}
		close(p.states[i].verdict)
	}
	p.conns, p.states = nil, nil
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
		c.bytesIn = cs.BytesIn
		// Unsent bytes were counted as written at the source; they are
		// counted again when written here.
		c.bytesOut = cs.BytesOut - min(cs.BytesOut, uint64(len(a.Unsent)))
		c.out = append(append([]byte{}, a.Unsent...), cs.Out...)
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
			c.user, c.real = u.User, u.Real
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
			ch = &channel{name: cs.Name, members: map[*conn]struct{}{}}
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
		}
		s.chans[fold(ch.name)] = ch
	}
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
