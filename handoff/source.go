package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sockshift/sockshift/handoff/catch"
	"github.com/sockshift/sockshift/handoff/internal/fdtable"
	"github.com/sockshift/sockshift/handoff/repair"
	"github.com/sockshift/sockshift/handoff/tcphdr"
	"github.com/sockshift/sockshift/handoff/wire"
)

// frozenConn is one connection between freeze and commit or rollback.
type frozenConn struct {
	svc    int // index into source.paused
	conn   *net.TCPConn
	addr   netip.Addr // its service address
	frozen *repair.Frozen
	app    []byte
	client netip.AddrPort // set by the dump
	local  netip.AddrPort // set by the dump
	rcvNxt uint32         // the next byte expected from the client, at the dump
	before *TCPSummary    // the first few only, for the report
	late   bool           // accepted during the pause (Adopted.New)
}

// source is the state of one outgoing hand-off, so rollback knows exactly
// what to undo.
type source struct {
	n     *Node
	opts  *Options
	rep   *Report
	clock *phaseClock
	peer  netip.Addr
	phase Step

	raw       net.Conn
	ch        channel
	targetMAC net.HardwareAddr
	catchers  catchers

	plan     plan         // what was asked for
	services []Service    // the quiesced services, index as sent to the target
	paused   []Paused     // their pauses, same index
	moving   []bool       // per service: its address still moves
	movers   []PausedConn // per paused connection that moves, with its service in svcOf
	svcOf    []int
	frozen   []frozenConn
	closing  []*net.TCPConn // paused, not established: closed after the commit
	ended    []frozenConn   // frozen, found closed at the dump: closed after the commit
	released []netip.Addr   // addresses removed here
	batch    *batcher
	frozeAt  time.Time
	rec      *record // this hand-off in the journal, once written
	tookBack bool    // after the commit, the target held nothing: all is back here
}

// Options tune one hand-off; nil applies the defaults.
type Options struct {
	// Services names the services to move, with their addresses; none
	// means every service whose address this node holds. Services that
	// share an address move together: name them all.
	Services []string
	// Hook, if set, steers this hand-off (before the node's own Hook).
	Hook Hook
	// Paced says a person steps through the hand-off with Hook.At, for
	// teaching: deadlines are PacedTimeout, not seconds. Nothing else
	// differs: the same messages, in the same order.
	Paced bool
}

// HandOff moves the node's services (those named in opts, or every one
// whose address is here), their connections and their addresses, to the
// peer whose channel listens on peer (port DefaultPort unless set in the
// Config). A connection that cannot move stays here and is served on; the
// report says which and why. On failure the error is an *Error that says
// whether the connections stayed here (rolled back).
func (n *Node) HandOff(ctx context.Context, peer netip.Addr, opts *Options) (*Report, error) {
	if opts == nil {
		opts = &Options{}
	}
	rep := &Report{From: n.cfg.Name}
	if !n.begin() {
		return rep, &Error{Phase: StepPrepare, RolledBack: true, Err: ErrBusy}
	}
	defer n.end()
	p, err := n.plan(opts.Services)
	if err != nil {
		return rep, &Error{Phase: StepPrepare, RolledBack: true, Err: err}
	}
	timeout := n.cfg.Timeout
	if opts.Paced {
		timeout = PacedTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	s := &source{n: n, opts: opts, rep: rep, clock: newPhaseClock(rep), peer: peer, plan: p, phase: StepPrepare,
		rec: &record{ID: newID(), Role: "source", Peer: peer}}
	defer func() {
		if s.ch.Conn != nil {
			s.ch.Close()
		}
	}()
	phases := []struct {
		name Step
		run  func(context.Context) error
	}{
		{StepPrepare, s.prepare},
		{StepQuiesce, s.quiesce},
		{StepFreeze, s.freeze},
		{StepRelease, s.release},
		{StepDump, s.dump},
		{StepTransfer, s.transfer},
		{StepRestore, s.awaitRestored},
	}
	for _, ph := range phases {
		if err := s.begin(ctx, ph.name); err != nil {
			return s.fail(err)
		}
		if err := ph.run(ctx); err != nil {
			return s.fail(err)
		}
		s.clock.mark(string(ph.name))
	}
	return s.commit(ctx)
}

// begin starts a phase: the hooks first (a paced hand-off waits there
// for the go-ahead).
func (s *source) begin(ctx context.Context, name Step) error {
	s.phase = name
	if name == StepPrepare {
		return nil // no hook: nothing has happened yet
	}
	err := at(ctx, name, s.opts.Hook, s.n.cfg.Hook)
	s.clock.last = time.Now() // waiting for a click is no part of the phase
	return err
}

// fail rolls back and says where it failed.
func (s *source) fail(err error) (*Report, error) {
	s.n.logf("hand-off to %v failed at %s: %v; rolling back", s.peer, s.phase, err)
	if rerr := s.rollback(); rerr != nil {
		err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
	}
	s.rep.Stayed = nil // everything stayed; the error says why
	return s.rep, &Error{Phase: s.phase, RolledBack: true, Err: err}
}

// prepare opens the channel, tells the target what comes, and arms the
// catchers.
func (s *source) prepare(ctx context.Context) error {
	n := s.n
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: n.cfg.Addr.AsSlice()}}
	raw, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(s.peer.String(), strconv.Itoa(int(n.cfg.Port))))
	if err != nil {
		return fmt.Errorf("peer %v unreachable: %w", s.peer, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	wc, err := wire.Client(raw, n.cfg.Key, nil)
	if err != nil {
		raw.Close()
		return fmt.Errorf("peer %v: %w", s.peer, err)
	}
	s.raw, s.ch = raw, channel{wc}

	var prep prepareMsg
	for _, i := range s.plan.services {
		svc := n.cfg.Services[i]
		s.services = append(s.services, svc)
		prep.Services = append(prep.Services, svc.Name())
		prep.Addrs = append(prep.Addrs, n.AddrOf(svc.Name()))
	}
	if s.opts.Paced {
		prep.Flags |= flagPaced
	}
	prep.ID = s.rec.ID
	// Our open descriptors bound the connections we can move (when few
	// were closed below the highest): the target's hint for room.
	if next, err := fdtable.Next(); err == nil {
		prep.Conns = uint32(min(next, MaxConns))
	}
	if err := s.ch.send(msgPrepare, prep.encode()); err != nil {
		return err
	}
	_, ready, err := s.ch.result(msgReady)
	if err != nil {
		return err
	}
	s.rep.To = ready.Name
	if s.targetMAC = net.HardwareAddr(ready.MAC); len(s.targetMAC) != 6 {
		return fmt.Errorf("target %s sent no MAC address", s.rep.To)
	}
	// The record opens now, off the switch: each later step is one write.
	s.rec.State, s.rec.Addrs = jPrepared, s.plan.addrs
	if err := n.journal.write(s.rec); err != nil {
		return err
	}
	// From before the freeze until the target's sockets are live, client
	// packets that still reach us are kept, then handed to the target.
	n.stopForwarding()
	if s.catchers, err = armCatchers(n.net, s.plan.addrs); err != nil {
		return err
	}
	// Out-of-order data at the freeze (bytes past a hole the client has
	// not yet filled) cannot be dumped, and the client, which counts them
	// SACKed, resends them only once it notices they are gone: 10 ms or
	// more after the hole is filled, or at its retransmission timeout. That
	// data arrived after its hole opened, and on a LAN a hole lasts about a
	// round trip (the client's fast retransmit fills it), so what arrives
	// in the minCatch before the freeze is caught, and DropEarly keeps it
	// for the target. The services still run meanwhile: no client waits.
	if !s.opts.Paced {
		time.Sleep(minCatch)
	}
	warmAddrs(n.net, s.plan.addrs) // the release follows
	return nil
}

// minCatch is how long the catcher watches before the freeze, at least.
const minCatch = 2 * time.Millisecond

// quiesce pauses the services that move and sorts their connections:
// those that move, and those that stay here (see sortConns).
func (s *source) quiesce(ctx context.Context) error {
	qctx, cancel := context.WithTimeout(ctx, s.n.cfg.QuiesceTimeout)
	defer cancel()
	for _, svc := range s.services {
		p, err := svc.Quiesce(qctx)
		if err != nil {
			return fmt.Errorf("service %s: %w", svc.Name(), err)
		}
		s.paused = append(s.paused, p)
	}
	return s.sortConns()
}

// sortConns decides, per paused connection, whether it may move. One not
// on its service's address (a client of this server's own address) stays.
// One the service keeps (PausedConn.Stay) keeps its whole address here,
// since a connection cannot outlive its address: every connection on it
// stays.
func (s *source) sortConns() error {
	conns := make([][]PausedConn, len(s.paused))
	declined := map[netip.Addr]string{}
	for i, p := range s.paused {
		conns[i] = p.Conns()
		addr := s.n.AddrOf(s.services[i].Name())
		for _, pc := range conns[i] {
			if localAddr(pc.Conn) != addr || declined[addr] != "" {
				continue
			}
			switch {
			case pc.Stay != "":
				declined[addr] = fmt.Sprintf("service %s keeps %v: %s", s.services[i].Name(), remoteAddrPort(pc.Conn), pc.Stay)
			case len(pc.State) > maxSnapshot:
				// The target would refuse it: better here than after the commit.
				declined[addr] = fmt.Sprintf("service %s: the snapshot of %v is %d bytes, over the %d a hand-off carries",
					s.services[i].Name(), remoteAddrPort(pc.Conn), len(pc.State), maxSnapshot)
			}
		}
	}
	s.moving = make([]bool, len(s.paused))
	for i := range s.paused {
		name := s.services[i].Name()
		addr := s.n.AddrOf(name)
		s.moving[i] = declined[addr] == ""
		for _, pc := range conns[i] {
			switch local := localAddr(pc.Conn); {
			case local != addr:
				s.stay(name, pc.Conn, fmt.Sprintf("not on the service address %v", addr))
			case !s.moving[i]:
				s.stay(name, pc.Conn, declined[addr])
			default:
				s.movers = append(s.movers, pc)
				s.svcOf = append(s.svcOf, i)
			}
		}
	}
	for a := range declined {
		s.catchers.stopOne(a)
	}
	if !slices.Contains(s.moving, true) {
		return fmt.Errorf("nothing can move: %v", declined)
	}
	return nil
}

// stay records a connection that stays here.
func (s *source) stay(service string, c *net.TCPConn, reason string) {
	s.rep.Stayed = append(s.rep.Stayed, StayedConn{Service: service, Client: remoteAddrPort(c),
		Local: localAddrPort(c), Reason: reason})
}

// freeze puts every connection that moves in repair mode, on parallel
// workers. A connection that is no longer established (its client is
// closing it) cannot move; it is closed after the commit, with its
// address gone.
func (s *source) freeze(context.Context) error {
	s.frozeAt = time.Now()
	s.catchers.mark()
	frozen := make([]*repair.Frozen, len(s.movers))
	errs := make([]error, len(s.movers))
	forEach(len(s.movers), func(i int) {
		frozen[i], errs[i] = repair.Freeze(s.movers[i].Conn)
	})
	var first error
	for i, pc := range s.movers {
		switch err := errs[i]; {
		case err == nil:
			svc := s.svcOf[i]
			s.frozen = append(s.frozen, frozenConn{svc: svc, conn: pc.Conn, frozen: frozen[i], app: pc.State,
				addr: s.n.AddrOf(s.services[svc].Name())})
		case isNotEstablished(err):
			s.n.logf("not moving %v: %v", pc.Conn.RemoteAddr(), err)
			s.closing = append(s.closing, pc.Conn)
		case first == nil:
			first = err
		}
	}
	s.rep.Connections = len(s.frozen)
	s.rep.Closed = len(s.closing)
	if first == nil && len(s.frozen) > MaxConns {
		first = fmt.Errorf("%d connections, more than the %d one hand-off may carry", len(s.frozen), MaxConns)
	}
	return first
}

func isNotEstablished(err error) bool {
	var re *repair.Error
	return errors.As(err, &re) && re.Socket == repair.Normal
}

// release removes the addresses that move. From here on, packets for them
// are dropped by our IP layer, never answered with a RST.
func (s *source) release(context.Context) error {
	if skip(StepRelease, s.opts.Hook, s.n.cfg.Hook) {
		return nil
	}
	var addrs []netip.Addr
	for i, svc := range s.services {
		if a := s.n.AddrOf(svc.Name()); s.moving[i] && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	// Written down first: a process killed from here on is settled by
	// the next one (Recover), which finds the addresses gone.
	s.rec.Addrs, s.rec.State = addrs, jReleased
	if err := s.n.journal.write(s.rec); err != nil {
		return err
	}
	for _, a := range addrs {
		if err := s.n.net.Remove(a); err != nil {
			return err
		}
		s.released = append(s.released, a)
	}
	s.catchers.released()
	s.freezeLate()
	return nil
}

// lateConner is a Paused whose service's listeners accepted connections
// during the pause (Pauser.Listen).
type lateConner interface {
	lateConns() ([]*net.TCPConn, error)
}

// freezeLate freezes, with the others, the connections the services'
// listeners accepted during the pause: with the addresses gone, none can
// join them now, and left here they would be cut off from their clients.
// The target's Adopt gets them with no state. One to an address that
// stays here (a listener on every address) stays too.
func (s *source) freezeLate() {
	for i, p := range s.paused {
		lc, ok := p.(lateConner)
		if !ok || !s.moving[i] {
			continue
		}
		conns, err := lc.lateConns()
		if err != nil {
			s.n.logf("service %s: connections accepted during the hand-off: %v", s.services[i].Name(), err)
		}
		addr := s.n.AddrOf(s.services[i].Name())
		for _, c := range conns {
			if ta, ok := c.LocalAddr().(*net.TCPAddr); !ok || ta.AddrPort().Addr().Unmap() != addr {
				continue // not to the address that moves: it goes on here
			}
			fr, err := repair.Freeze(c)
			if err != nil {
				// Closed by its client already: it ends here, as those
				// closing at the freeze do.
				s.n.logf("not moving %v (accepted during the hand-off): %v", c.RemoteAddr(), err)
				s.closing = append(s.closing, c)
				continue
			}
			s.frozen = append(s.frozen, frozenConn{svc: i, conn: c, frozen: fr, addr: addr, late: true})
		}
	}
	s.rep.Connections = len(s.frozen)
}

// awaitRestored waits for the target's verdict. Addresses it refused stay
// here with their connections; the rest goes on.
func (s *source) awaitRestored(context.Context) error {
	_, restored, err := s.ch.result(msgRestored)
	if err == nil && !restored.OK {
		err = fmt.Errorf("target %s could not restore: %s", s.rep.To, restored.Reason)
	}
	if err != nil {
		return err
	}
	for _, r := range restored.Refused {
		if err := s.giveBack(r.Addr.Unmap(), r.Reason); err != nil {
			return err
		}
	}
	if after, err := decodeAfter(restored.Extra); err == nil {
		for _, f := range s.frozen {
			if a, ok := after[f.client]; ok && f.before != nil {
				s.rep.Moved = append(s.rep.Moved, MovedConn{Client: f.client, Before: *f.before, After: a})
			}
		}
	}
	for i, svc := range s.services {
		if s.moving[i] {
			s.rep.Services = append(s.rep.Services, svc.Name())
			if a := s.n.AddrOf(svc.Name()); !slices.Contains(s.rep.Addrs, a) {
				s.rep.Addrs = append(s.rep.Addrs, a)
			}
		}
	}
	return nil
}

// giveBack keeps an address the target refused here: its connections
// thaw and stay, and it is ours again. The target has dropped its copies.
func (s *source) giveBack(addr netip.Addr, reason string) error {
	for i, svc := range s.services {
		if s.n.AddrOf(svc.Name()) == addr {
			s.moving[i] = false
		}
	}
	if !slices.Contains(s.moving, true) {
		return fmt.Errorf("target %s refused every address: %s", s.rep.To, reason)
	}
	s.catchers.stopOne(addr)
	var errs []error
	kept := s.frozen[:0]
	for _, f := range s.frozen {
		if f.addr != addr {
			kept = append(kept, f)
			continue
		}
		errs = append(errs, f.frozen.Thaw())
		s.stay(s.services[f.svc].Name(), f.conn, "refused by the target: "+reason)
	}
	clear(s.frozen[len(kept):])
	s.frozen = kept
	s.rep.Connections = len(s.frozen)
	if i := slices.Index(s.released, addr); i >= 0 {
		s.released = slices.Delete(s.released, i, i+1)
		errs = append(errs, s.n.Take(addr))
	}
	s.n.logf("target %s refused %v (%s): its connections stay here", s.rep.To, addr, reason)
	return errors.Join(errs...)
}

// commit passes the point of no return: the target announces and resumes,
// our frozen sockets close, the services learn what moved.
func (s *source) commit(ctx context.Context) (*Report, error) {
	if err := s.begin(ctx, StepAnnounce); err != nil {
		return s.fail(err)
	}
	if err := peerGone(s.raw); err != nil {
		return s.fail(err)
	}
	// The point of no return, written down before it is passed: a source
	// restarted after this tells the target to go on (Recover).
	s.rec.State = jCommit
	if err := s.n.journal.write(s.rec); err != nil {
		return s.fail(err)
	}
	if err := s.ch.send(msgCommit, nil); err != nil {
		// Whether the target read it is unknown: ask it on a new channel.
		return s.afterCommit(ctx, err, s.settle)
	}
	s.rep.Committed = true
	s.clock.mark("commit")
	// Our frozen sockets close (silently) once the target has resumed:
	// closing thousands at once would take the CPU the target needs to
	// resume them (on one host, or a small VM, the two share it).
	release := make(chan struct{})
	startRelease := sync.OnceFunc(func() { close(release) })
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-release
		s.settle()
	}()
	defer func() { startRelease(); <-closed }()

	s.phase = StepResume
	reported, err := s.awaitResumed()
	if err != nil {
		return s.afterCommit(ctx, err, startRelease)
	}
	defer s.n.journal.remove(s.rec) // done: after the caught packets went
	// A paced hand-off waits here, with the target serving and the caught
	// packets and frozen copies still here; committed, so only forward.
	if serr := s.begin(ctx, StepResume); serr != nil {
		s.n.logf("%v; going on, the hand-off is committed", serr)
	}
	// The target's sockets are live: deliver what reached us meanwhile, and
	// of what reached us before the freeze, the data our dump lacks.
	stats, ferr := s.catchers.forward(s.targetMAC, s.beyondDump(), s.owned())
	s.n.setForwarding(s.catchers)
	if ferr != nil {
		s.n.logf("forwarding caught packets to %s: %v", s.rep.To, ferr)
	}
	s.rep.Caught = stats.Caught - stats.Early // what the switch itself left to deliver
	startRelease()
	s.clock.mark(string(s.phase))
	s.n.logf("handed %d connections (%v) to %s in %v; %d stayed; %d frames caught, %d forwarded, %d already dumped, %d of other connections, %d dropped",
		s.rep.Connections, s.rep.Addrs, s.rep.To, s.rep.Total, len(s.rep.Stayed), stats.Caught, stats.Forwarded, stats.Early, stats.Others, stats.Dropped)
	if reported != nil {
		return s.rep, &Error{Phase: s.phase, RolledBack: false, Err: fmt.Errorf("target %s after commit: %w", s.rep.To, reported)}
	}
	return s.rep, nil
}

// afterCommit settles a committed hand-off whose channel broke before the
// target said it serves: the target may have died, or only the channel.
// It asks the target on new channels. If the target serves, the hand-off
// is done; if it holds nothing (it died before its sockets served), our
// frozen copies are still exact: the addresses come back here and the
// connections thaw. Without an answer the decision stands: the target
// holds them.
func (s *source) afterCommit(ctx context.Context, cause error, release func()) (*Report, error) {
	s.rep.Committed = true
	s.n.logf("hand-off %x to %s after the commit: %v; asking the target how it ended", s.rec.ID, s.rep.To, cause)
	wait := max(s.n.cfg.Grace, 2*time.Second) + time.Second
	out, attempt, err := s.n.askSettleLong(context.WithoutCancel(ctx), s.rec, wait, nil)
	s.rep.Total = time.Since(s.frozeAt)
	s.clock.mark(string(s.phase))
	switch {
	case err != nil && attempt.refused && !s.n.anyoneHolds(s.released):
		// No process listens on the target's channel, and no host
		// answers for the addresses: the target died before it took
		// them, and cannot take them any more. Ours are still exact.
		cause = fmt.Errorf("%v; its process is gone and no host holds the addresses", cause)
	case err != nil:
		s.catchers.stop()
		release()
		s.n.keepAsking(s.rec)
		return s.rep, &Error{Phase: s.phase, RolledBack: false,
			Err: fmt.Errorf("target %s after commit: %w; it cannot be asked (%v), so it keeps the connections (asked again each second)", s.rep.To, cause, err)}
	case out.Outcome == settledResumed:
		s.n.journal.remove(s.rec)
		stats, _ := s.catchers.forward(s.targetMAC, s.beyondDump(), s.owned())
		s.n.setForwarding(s.catchers)
		s.rep.Caught = stats.Caught - stats.Early
		release()
		s.n.logf("hand-off %x: the target serves %d connections on %v", s.rec.ID, out.Conns, out.Addrs)
		return s.rep, nil
	}
	// The target holds nothing: take everything back, as a rollback does.
	// Its channel is broken and it has nothing to abort.
	s.tookBack = true
	s.rep.Committed = false
	s.ch.Close()
	s.ch.Conn = nil
	rerr := s.rollback()
	s.rep.Stayed, s.rep.Connections = nil, 0
	s.rep.Services, s.rep.Addrs = nil, nil
	err = fmt.Errorf("%w (%v): the connections are thawed here", errTargetLost, cause)
	if out.Outcome == settledLostSome {
		err = fmt.Errorf("%w (%v), while its sockets left repair mode: those it had resumed died with it (their clients saw it close them); the others are thawed here", errTargetLost, cause)
	}
	if rerr != nil {
		err = errors.Join(err, rerr)
	}
	return s.rep, &Error{Phase: s.phase, RolledBack: true, Err: err}
}

// awaitResumed waits, after the commit, for the target to serve. reported
// is a failure the target reported (it serves, less what failed); err is
// a channel that broke, after which the target must be asked.
func (s *source) awaitResumed() (reported, err error) {
	_, resumed, err := s.ch.result(msgResumed)
	s.rep.Total = time.Since(s.frozeAt)
	if err != nil {
		return nil, err
	}
	if !resumed.OK {
		reported = errors.New(resumed.Reason)
	}
	if len(resumed.Timing) == 2 {
		announced := time.Duration(resumed.Timing[0]) * time.Microsecond
		s.clock.add("announce", announced)
		s.clock.last = s.clock.last.Add(announced)
	}
	return reported, nil
}

// settle, after the commit, closes the sockets that moved (silently) and
// those that were closing, and tells each service what moved.
func (s *source) settle() {
	if s.tookBack {
		return
	}
	moved := make(map[*net.TCPConn]bool, len(s.frozen)+len(s.closing))
	for _, f := range s.frozen {
		if err := f.frozen.Close(); err != nil {
			s.n.logf("closing a moved socket: %v", err)
		}
		moved[f.conn] = true
	}
	for _, c := range s.closing {
		c.Close()
		moved[c] = true
	}
	for _, f := range s.ended {
		f.frozen.Close() // silent: its client has reset or closed it
		moved[f.conn] = true
	}
	settleAll(s.paused, func(c *net.TCPConn) bool { return moved[c] })
}

// beyondDump says whether a packet caught before the freeze carries data
// the dump does not hold: bytes at or past the next byte its connection
// expected. Anything it cannot read is kept (the target sorts it out).
// The table of connections is built only if a packet is asked about: a
// hand-off of thousands usually catches none before the freeze, and this
// runs while the client waits for the caught packets.
func (s *source) beyondDump() func(ip []byte) bool {
	var next map[netip.AddrPort]uint32
	return func(ip []byte) bool {
		h, err := tcphdr.Parse(ip)
		if err != nil {
			return true
		}
		if next == nil {
			next = make(map[netip.AddrPort]uint32, len(s.frozen))
			for _, f := range s.frozen {
				if f.client.IsValid() {
					next[f.client] = f.rcvNxt
				}
			}
		}
		want, moved := next[h.Src]
		if !moved {
			return true
		}
		return h.Payload > 0 && int32(h.Seq+uint32(h.Payload)-want) > 0
	}
}

// owned says whether a caught packet is the target's to receive: one of a
// connection that moved, or a SYN that arrived once the address was gone
// (our kernel never answered it; the target's listener will). Anything
// else would draw a reset from the target: a connection that was closing
// here, or was opened here after the quiesce (its SYN-ACK came from us).
// What it cannot read goes on (the target sorts it out).
func (s *source) owned() func(ip []byte, at catch.Stage) bool {
	var moved map[[2]netip.AddrPort]bool
	return func(ip []byte, at catch.Stage) bool {
		h, err := tcphdr.Parse(ip)
		if err != nil {
			return true
		}
		if h.Flags&(tcphdr.SYN|tcphdr.ACK) == tcphdr.SYN {
			return at == catch.AfterRelease
		}
		if moved == nil {
			moved = make(map[[2]netip.AddrPort]bool, len(s.frozen))
			for _, f := range s.frozen {
				moved[[2]netip.AddrPort{f.client, f.local}] = true
			}
		}
		return moved[[2]netip.AddrPort{h.Src, h.Dst}]
	}
}

// rollback undoes a hand-off that was not committed: the target drops what
// it rebuilt and the addresses, then we take them back, announce them,
// thaw our sockets and let the services go on.
func (s *source) rollback() error {
	var errs []error
	s.catchers.stop()
	if s.rec.State == jPrepared {
		defer s.n.journal.remove(s.rec)
	} else if s.rec.State != "" {
		s.rec.State = jRollback
		if err := s.n.journal.write(s.rec); err != nil {
			errs = append(errs, err)
		}
		defer s.n.journal.remove(s.rec)
	}
	if s.ch.Conn != nil {
		// Best effort: a dead target holds nothing (it takes no address
		// before the commit); a live one whose channel broke keeps what it
		// rebuilt for a grace period, so it is told on a new channel.
		s.ch.SetDeadline(time.Now().Add(time.Second))
		if s.ch.send(msgAbort, nil) != nil {
			go s.n.tellAbort(context.Background(), s.rec)
		} else {
			// Wait until the target has let go (dropped the addresses,
			// discarded its sockets) before we take them back; a Restored
			// it sent before reading the Abort comes first.
			for {
				typ, _, err := s.ch.Recv()
				if err != nil || typ == msgAborted {
					break
				}
			}
		}
	}
	if len(s.released) > 0 {
		if err := s.n.Take(s.released...); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range append(s.frozen, s.ended...) {
		if err := f.frozen.Thaw(); err != nil {
			errs = append(errs, err)
		}
	}
	settleAll(s.paused, nothingMoved)
	return errors.Join(errs...)
}

func localAddrPort(c *net.TCPConn) netip.AddrPort {
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

func localAddr(c *net.TCPConn) netip.Addr { return localAddrPort(c).Addr() }

func remoteAddrPort(c *net.TCPConn) netip.AddrPort {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
