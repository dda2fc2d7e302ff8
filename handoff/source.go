package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/sockshift/sockshift/handoff/catch"
	"github.com/sockshift/sockshift/handoff/internal/bufpool"
	"github.com/sockshift/sockshift/handoff/internal/fdtable"
	"github.com/sockshift/sockshift/handoff/repair"
	"github.com/sockshift/sockshift/handoff/vip"
	"github.com/sockshift/sockshift/handoff/wire"
	"github.com/sockshift/sockshift/internal/tcphdr"
)

// frozenConn is one connection between freeze and commit or rollback.
type frozenConn struct {
	svc    int
	frozen *repair.Frozen
	app    []byte
	client netip.AddrPort // set by the dump
	rcvNxt uint32         // the next byte expected from the client, at the dump
	before *TCPSummary    // the first few only, for the report
}

// source is the state of one outgoing hand-off, so rollback knows exactly
// what to undo.
type source struct {
	n        *Node
	ch       channel
	catcher  *catch.Catcher
	paused   []Paused
	frozen   []frozenConn
	staying  []*net.TCPConn // paused but not moving: closing anyway
	released bool
}

// Options tune one hand-off; nil applies the defaults.
type Options struct {
	// Step, if set, runs the hand-off one phase at a time, for teaching:
	// it is called before each of quiesce, freeze, release, dump, transfer,
	// restore, announce and resume, and the phase runs once it returns nil.
	// An error before announce rolls back like any failure; announce is
	// the commit. Deadlines are then StepTimeout, not seconds.
	Step func(ctx context.Context, phase string) error
	// SkipAnnounce breaks the hand-off on purpose: the target sends no
	// gratuitous ARP, so the client keeps sending to the old host. Lab only.
	SkipAnnounce bool
	// KeepVIP breaks the hand-off on purpose: the source keeps the VIP, so
	// once its sockets are gone it answers the client with RSTs. Lab only.
	KeepVIP bool
}

// StepTimeout bounds a hand-off run one phase at a time.
const StepTimeout = 10 * time.Minute

// StepPhases are the phases Options.Step is called for, in order.
var StepPhases = []string{"quiesce", "freeze", "release", "dump", "transfer", "restore", "announce", "resume"}

// HandOff moves every connection of the node's services, and the VIP, to
// the peer whose channel listens on peer (port DefaultPort unless set in
// the Config). It returns the report; on failure the error is an *Error
// that says whether the connections stayed here (rolled back).
func (n *Node) HandOff(ctx context.Context, peer netip.Addr, opts *Options) (*Report, error) {
	if opts == nil {
		opts = &Options{}
	}
	rep := &Report{From: n.cfg.Name}
	if !n.begin() {
		return rep, &Error{Phase: "start", RolledBack: true, Err: ErrBusy}
	}
	defer n.end()
	timeout := n.cfg.Timeout
	if opts.Step != nil {
		timeout = StepTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	s := &source{n: n}
	clock := newPhaseClock(rep)
	phase := "connect"
	fail := func(err error) (*Report, error) {
		n.logf("hand-off to %v failed at %s: %v; rolling back", peer, phase, err)
		if rerr := s.rollback(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
		return rep, &Error{Phase: phase, RolledBack: true, Err: err}
	}
	// begin starts a phase: in step mode it waits for the go-ahead.
	begin := func(name string) error {
		phase = name
		if opts.Step == nil {
			return nil
		}
		err := opts.Step(ctx, name)
		clock.last = time.Now() // waiting for a click is no part of the phase
		return err
	}
	// done ends a phase: the fault hook, then its time.
	done := func() error {
		if err := n.fault(phase); err != nil {
			return err
		}
		clock.mark(phase)
		return nil
	}

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: n.cfg.Addr.AsSlice()}}
	raw, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(peer.String(), strconv.Itoa(int(n.cfg.Port))))
	if err != nil {
		return fail(fmt.Errorf("peer %v unreachable: %w", peer, err))
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	wc, err := wire.Client(raw, n.cfg.Key, nil)
	if err != nil {
		raw.Close()
		return fail(fmt.Errorf("peer %v: %w", peer, err))
	}
	s.ch = channel{wc}
	defer wc.Close()

	phase = "prepare"
	prep := prepareMsg{VIP: n.cfg.VIP}
	for _, svc := range n.cfg.Services {
		prep.Services = append(prep.Services, svc.Name())
	}
	if opts.Step != nil {
		prep.Flags |= flagStep
	}
	if opts.SkipAnnounce {
		prep.Flags |= flagSkipAnnounce
	}
	// Our open descriptors bound the connections we can move (when few
	// were closed below the highest): the target's hint for room.
	if next, err := fdtable.Next(); err == nil {
		prep.Conns = uint32(min(next, MaxConns))
	}
	if err := s.ch.send(msgPrepare, prep.encode()); err != nil {
		return fail(err)
	}
	_, ready, err := s.ch.result(msgReady)
	if err != nil {
		return fail(err)
	}
	rep.To = ready.Name
	targetMAC := net.HardwareAddr(ready.MAC)
	if len(targetMAC) != 6 {
		return fail(fmt.Errorf("target %s sent no MAC address", rep.To))
	}
	// From before the freeze until the target's sockets are live, client
	// packets that still reach us are kept, then handed to the target.
	n.stopForwarding()
	if s.catcher, err = catch.Arm(n.cfg.Interface, n.cfg.VIP, nil); err != nil {
		return fail(err)
	}
	// Out-of-order data at the freeze (bytes past a hole the client has
	// not yet filled) cannot be dumped, and the client, which counts them
	// SACKed, resends them only once it notices they are gone: 10 ms or
	// more after the hole is filled, or at its retransmission timeout. That
	// data arrived after its hole opened, and on a LAN a hole lasts about a
	// round trip (the client's fast retransmit fills it), so what arrives
	// in the minCatch before the freeze is caught, and DropEarly keeps it
	// for the target. The services still run meanwhile: no client waits.
	if opts.Step == nil {
		time.Sleep(minCatch)
	}
	if err := done(); err != nil {
		return fail(err)
	}

	if err := begin("quiesce"); err != nil {
		return fail(err)
	}
	qctx, qcancel := context.WithTimeout(ctx, n.cfg.QuiesceTimeout)
	for _, svc := range n.cfg.Services {
		p, err := svc.Quiesce(qctx)
		if err != nil {
			qcancel()
			return fail(fmt.Errorf("service %s: %w", svc.Name(), err))
		}
		s.paused = append(s.paused, p)
	}
	qcancel()
	if err := done(); err != nil {
		return fail(err)
	}

	if err := begin("freeze"); err != nil {
		return fail(err)
	}
	frozeAt := time.Now()
	s.catcher.Mark()
	if err := s.freeze(); err != nil {
		return fail(err)
	}
	rep.Connections = len(s.frozen)
	if len(s.frozen) > MaxConns {
		return fail(fmt.Errorf("%d connections, more than the %d one hand-off may carry", len(s.frozen), MaxConns))
	}
	if err := done(); err != nil {
		return fail(err)
	}

	// From here on, packets for the VIP are dropped by our IP layer, never
	// answered with a RST.
	if err := begin("release"); err != nil {
		return fail(err)
	}
	if !opts.KeepVIP {
		if err := vip.Remove(n.cfg.Interface, n.cfg.VIP); err != nil {
			return fail(err)
		}
		s.released = true
	}
	if err := done(); err != nil {
		return fail(err)
	}

	if err := begin("dump"); err != nil {
		return fail(err)
	}
	if opts.Step == nil {
		// Dump and send in a pipeline: the target restores while we dump.
		if err := s.dumpAndSend(clock); err != nil {
			return fail(err)
		}
		phase = "transfer"
		if err := done(); err != nil {
			return fail(err)
		}
	} else {
		var entries []connEntry
		err := s.sendServices()
		if err == nil {
			err = s.dump(func(e connEntry) error { entries = append(entries, e); return nil })
		}
		if err == nil {
			err = done()
		}
		if err == nil {
			err = begin("transfer")
		}
		if err == nil {
			err = s.sendConns(entries)
		}
		if err == nil {
			err = done()
		}
		if err == nil {
			err = begin("restore")
		}
		if err == nil {
			err = s.ch.send(msgTransferDone, s.summarized())
		}
		if err != nil {
			return fail(err)
		}
	}

	phase = "restore"
	_, restored, err := s.ch.result(msgRestored)
	if err == nil && !restored.OK {
		err = fmt.Errorf("target %s could not restore: %s", rep.To, restored.Reason)
	}
	if err != nil {
		return fail(err)
	}
	if after, err := decodeAfter(restored.Extra); err == nil {
		for _, f := range s.frozen {
			if a, ok := after[f.client]; ok && f.before != nil {
				rep.Moved = append(rep.Moved, MovedConn{Client: f.client, Before: *f.before, After: a})
			}
		}
	}
	if err := done(); err != nil {
		return fail(err)
	}

	// The one point of no return: the target announces and resumes.
	if err := begin("announce"); err != nil {
		return fail(err)
	}
	phase = "commit"
	if err := peerGone(raw); err != nil {
		return fail(err)
	}
	if err := s.ch.send(msgCommit, nil); err != nil {
		return fail(err)
	}
	rep.Committed = true
	clock.mark(phase)
	// Our frozen sockets close (silently) once the target has resumed:
	// closing thousands at once would take the CPU the target needs to
	// resume them (on one host, or a small VM, the two share it).
	release := make(chan struct{})
	var releaseOnce sync.Once
	startRelease := func() { releaseOnce.Do(func() { close(release) }) }
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		<-release
		for _, f := range s.frozen {
			if err := f.frozen.Close(); err != nil {
				n.logf("closing a moved socket: %v", err)
			}
		}
		for _, p := range s.paused {
			p.Release()
		}
		for _, c := range s.staying {
			c.Close()
		}
	}()
	defer func() { startRelease(); <-closed }()

	phase = "resume"
	if opts.Step != nil {
		// The target announced and holds; after the commit only forward, so
		// a failed step still resumes.
		_, _, err := s.ch.result(msgAnnounced)
		clock.mark("announce")
		if err == nil {
			if serr := opts.Step(ctx, "resume"); serr != nil {
				n.logf("step: %v; resuming anyway, the hand-off is committed", serr)
			}
			clock.last = time.Now()
			err = s.ch.send(msgResume, nil)
		}
		if err != nil {
			s.catcher.Stop()
			return rep, &Error{Phase: phase, RolledBack: false, Err: fmt.Errorf("target %s after commit: %w", rep.To, err)}
		}
	}
	_, resumed, err := s.ch.result(msgResumed)
	if err == nil && !resumed.OK {
		err = errors.New(resumed.Reason)
	}
	rep.Total = time.Since(frozeAt)
	if len(resumed.Timing) == 2 && opts.Step == nil {
		announced := time.Duration(resumed.Timing[0]) * time.Microsecond
		clock.add("announce", announced)
		clock.last = clock.last.Add(announced)
	}
	if err != nil {
		s.catcher.Stop()
		clock.mark(phase)
		return rep, &Error{Phase: phase, RolledBack: false, Err: fmt.Errorf("target %s after commit: %w", rep.To, err)}
	}
	// The target's sockets are live: deliver what reached us meanwhile, and
	// of what reached us before the freeze, the data our dump lacks.
	s.catcher.DropEarly(s.beyondDump())
	stats, ferr := s.catcher.Forward(targetMAC)
	n.setForwarding(s.catcher)
	if ferr != nil {
		n.logf("forwarding caught packets to %s: %v", rep.To, ferr)
	}
	rep.Caught = stats.Caught - stats.Early // what the switch itself left to deliver
	startRelease()
	clock.mark(phase)
	n.logf("handed %d connections to %s in %v; %d frames caught, %d forwarded, %d already dumped, %d dropped",
		rep.Connections, rep.To, rep.Total, stats.Caught, stats.Forwarded, stats.Early, stats.Dropped)
	return rep, nil
}

// minCatch is how long the catcher watches before the freeze, at least.
const minCatch = 2 * time.Millisecond

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

// freeze puts every paused connection in repair mode, on parallel
// workers. A connection that is no longer established (its client is
// closing it) stays here and is closed after the commit.
func (s *source) freeze() error {
	type item struct {
		svc  int
		conn PausedConn
	}
	var items []item
	for i, p := range s.paused {
		for _, pc := range p.Conns() {
			items = append(items, item{i, pc})
		}
	}
	frozen := make([]*repair.Frozen, len(items))
	errs := make([]error, len(items))
	forEach(len(items), func(i int) {
		frozen[i], errs[i] = repair.Freeze(items[i].conn.Conn)
	})
	var first error
	for i, it := range items {
		switch err := errs[i]; {
		case err == nil:
			s.frozen = append(s.frozen, frozenConn{svc: it.svc, frozen: frozen[i], app: it.conn.State})
		case isNotEstablished(err):
			s.n.logf("not moving %v: %v", it.conn.Conn.RemoteAddr(), err)
			s.staying = append(s.staying, it.conn.Conn)
		case first == nil:
			first = err
		}
	}
	return first
}

func isNotEstablished(err error) bool {
	var re *repair.Error
	return errors.As(err, &re) && re.Socket == repair.Normal
}

// sendServices sends every service's shared state and its count of
// connections.
func (s *source) sendServices() error {
	counts := make([]uint32, len(s.paused))
	for _, f := range s.frozen {
		counts[f.svc]++
	}
	for i, p := range s.paused {
		msg := serviceMsg{Index: uint16(i), Shared: p.Shared(), Conns: counts[i]}
		if err := s.ch.send(msgService, msg.encode()); err != nil {
			return err
		}
	}
	return nil
}

// dump dumps every frozen socket on parallel workers and hands each state
// to emit, on the calling goroutine, as it comes.
func (s *source) dump(emit func(connEntry) error) error {
	type dumped struct {
		entry connEntry
		err   error
	}
	jobs := make(chan int)
	results := make(chan dumped, 64)
	stop := make(chan struct{})
	defer close(stop)
	for w := 0; w < workers(len(s.frozen)); w++ {
		go func() {
			for i := range jobs {
				f := s.frozen[i]
				st, err := f.frozen.Dump()
				e := connEntry{Service: uint16(f.svc), App: f.app}
				if err == nil {
					if len(st.RecvQueue)+len(st.Unacked)+len(st.Unsent) >= bigState {
						e.state = st // released once its batch is sent
					} else {
						e.TCP, err = st.MarshalBinary()
					}
					s.frozen[i].client, s.frozen[i].rcvNxt = st.Remote, st.RecvSeq+uint32(len(st.RecvQueue))
					if i < ReportedConns {
						sum := Summarize(st)
						s.frozen[i].before = &sum
					}
				}
				select {
				case results <- dumped{e, err}:
				case <-stop:
					return
				}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range s.frozen {
			select {
			case jobs <- i:
			case <-stop:
				return
			}
		}
	}()
	for range s.frozen {
		r := <-results
		if r.err != nil {
			return r.err
		}
		if err := emit(r.entry); err != nil {
			return err
		}
	}
	return nil
}

// summarized lists the clients whose states the report shows.
func (s *source) summarized() []byte {
	var clients []netip.AddrPort
	for _, f := range s.frozen {
		if f.before != nil {
			clients = append(clients, f.client)
		}
	}
	return encodeClients(clients)
}

// batcher sends connection states in batches.
type batcher struct {
	ch    channel
	batch []connEntry
	size  int
}

func (b *batcher) add(e connEntry) error {
	b.batch = append(b.batch, e)
	b.size += e.tcpLen() + len(e.App)
	if len(b.batch) >= batchConns || b.size >= batchBytes {
		return b.flush()
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.batch) == 0 {
		return nil
	}
	payload, err := encodeConns(b.batch)
	if err == nil {
		err = b.ch.sendOwned(msgConns, payload)
		bufpool.Put(payload) // sent: the kernel has the bytes
	}
	// The queues are in the frame now; their buffers serve the next dump.
	for _, e := range b.batch {
		if e.state != nil {
			e.state.Release()
		}
	}
	clear(b.batch)
	b.batch, b.size = b.batch[:0], 0
	return err
}

// sendConns sends states already dumped.
func (s *source) sendConns(entries []connEntry) error {
	b := &batcher{ch: s.ch}
	for _, e := range entries {
		if err := b.add(e); err != nil {
			return err
		}
	}
	return b.flush()
}

// dumpAndSend dumps and sends in a pipeline, then ends the transfer. It
// marks the dump phase when the last socket is dumped.
func (s *source) dumpAndSend(clock *phaseClock) error {
	if err := s.sendServices(); err != nil {
		return err
	}
	b := &batcher{ch: s.ch}
	if err := s.dump(b.add); err != nil {
		return err
	}
	if err := s.n.fault("dump"); err != nil {
		return err
	}
	clock.mark("dump")
	if err := b.flush(); err != nil {
		return err
	}
	return s.ch.send(msgTransferDone, s.summarized())
}

// rollback undoes a hand-off that was not committed: the target drops what
// it rebuilt and the VIP, then we take the VIP back, announce it, thaw our
// sockets and let the services go on.
func (s *source) rollback() error {
	var errs []error
	if s.catcher != nil {
		s.catcher.Stop()
	}
	if s.ch.Conn != nil {
		// Best effort: a dead target holds nothing that outlives it but the
		// VIP, which its node removes when it starts again.
		s.ch.SetDeadline(time.Now().Add(time.Second))
		if s.ch.send(msgAbort, nil) == nil {
			// Wait until the target has let go (dropped the VIP, discarded
			// its sockets) before we take the VIP back; a Restored it sent
			// before reading the Abort comes first.
			for {
				typ, _, err := s.ch.Recv()
				if err != nil || typ == msgAborted {
					break
				}
			}
		}
	}
	if s.released {
		if err := s.n.TakeVIP(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, f := range s.frozen {
		if err := f.frozen.Thaw(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range s.paused {
		p.Resume()
	}
	return errors.Join(errs...)
}
