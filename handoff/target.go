package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sockshift/sockshift/handoff/internal/fdtable"
	"github.com/sockshift/sockshift/handoff/repair"
	"github.com/sockshift/sockshift/handoff/wire"
)

// restoredConn is one connection rebuilt here, still frozen.
type restoredConn struct {
	client   netip.AddrPort
	svc      int
	restored *repair.Restored
	app      []byte
	unsent   []byte
	fresh    bool // accepted during the hand-off (Adopted.New)
}

// target is the state of one incoming hand-off, so a rollback knows exactly
// what to discard.
type target struct {
	n        *Node
	ch       channel
	raw      net.Conn
	flags    uint8
	id       uint64                  // the hand-off's, as the source named it
	wanted   map[netip.AddrPort]bool // clients to read back for the report
	services []Service               // index as the source numbered them
	addrs    []netip.Addr            // each service's address, same index
	shared   [][]byte
	coming   []bool       // per service: its state came, so it moves
	added    []netip.Addr // service addresses added here
	incoming int          // connections the services announced
	received int

	jobs chan connEntry // to the restore workers
	wg   sync.WaitGroup

	mu       sync.Mutex
	restored []restoredConn
	failed   error                 // first failure; later messages are drained
	refused  map[netip.Addr]string // addresses we will not take, and why

	end          func() // frees the node for the next hand-off (once)
	restoreStart time.Time
	timing       []uint64 // announce and resume, microseconds
	rec          *record  // this hand-off in the journal, from the commit

	// The decision, taken once: from the channel, or from a Settle on a
	// new channel when the first one broke (see Node.settleIncoming).
	decideOnce sync.Once
	finishOnce sync.Once
	decided    chan struct{}
	outcome    settledMsg
	commitErr  error
}

// serveSession runs the target side of one hand-off.
func (n *Node) serveSession(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	// An idle or slow peer gets cut off.
	raw.SetDeadline(time.Now().Add(n.cfg.Timeout))
	wc, err := wire.Server(raw, n.cfg.Key, nil)
	if err != nil {
		n.logf("refused channel from %v: %v", raw.RemoteAddr(), err)
		return
	}
	typ, payload, err := wc.Recv()
	if err != nil {
		n.logf("channel from %v: %v", raw.RemoteAddr(), err)
		return
	}
	if typ == msgSettle {
		n.settleIncoming(channel{wc}, payload)
		return
	}
	t := &target{n: n, ch: channel{wc}, raw: raw, decided: make(chan struct{})}
	if err := t.run(ctx, typ, payload); err != nil {
		n.logf("incoming hand-off from %v: %v", raw.RemoteAddr(), err)
	}
}

// run is the target's side, in order: prepare, receive (restoring as the
// states come), report what was rebuilt, wait for the decision, then, once
// committed, announce and resume. Until the commit every failure discards
// what was rebuilt here.
func (t *target) run(ctx context.Context, typ uint8, payload []byte) error {
	end, err := t.prepare(ctx, typ, payload)
	if err != nil {
		return err
	}
	defer end()
	t.end = end
	defer func() {
		if t.rec.State == jPrepared || t.rec.State == "" {
			t.n.journal.remove(t.rec) // never committed: nothing to answer for
		}
	}()
	aborted, err := t.receive()
	if err != nil || aborted {
		return err
	}
	if err := t.reportRestored(ctx); err != nil {
		return err
	}
	t.n.addPending(t)
	commit, err := t.decision()
	if err != nil {
		// The source may be gone (killed) or only its channel: what we
		// rebuilt waits, frozen and holding no address, for its decision
		// on a new channel (a restarted source asks), then is discarded.
		t.n.logf("hand-off %x from %v: %v; keeping its %d connections frozen for %v, awaiting the source's decision",
			t.id, t.raw.RemoteAddr(), err, len(t.restored), t.n.cfg.Grace)
		select {
		case <-t.decided:
		case <-time.After(t.n.cfg.Grace):
			t.decide(false)
		}
		return err
	}
	out := t.decide(commit)
	if !commit {
		return t.ch.sendResult(msgAborted, resultMsg{OK: true})
	}
	res := resultMsg{OK: t.commitErr == nil, Conns: out.Conns, Timing: t.timing}
	if t.commitErr != nil {
		res.Reason = t.commitErr.Error()
	}
	if serr := t.ch.sendResult(msgResumed, res); serr != nil {
		t.n.logf("report resume to source: %v", serr)
	}
	t.finish() // after the answer: the source's caught packets wait for it
	return t.commitErr
}

// decide takes the decision once, whoever asks first: commit (journal,
// addresses, announce, resume) or discard. Later callers wait for it and
// get the same outcome.
func (t *target) decide(commit bool) settledMsg {
	t.decideOnce.Do(func() {
		defer close(t.decided)
		defer t.n.removePending(t)
		defer t.end()
		if !commit {
			t.discard()
			t.outcome = settledMsg{Outcome: settledAborted}
			return
		}
		rec := t.rec
		rec.Addrs, rec.State = t.moving(), jCommitted
		if err := t.n.journal.write(rec); err != nil {
			// Nothing taken yet: better to lose the hand-off than to
			// hold an address no restart could account for.
			t.n.logf("hand-off %x: %v; discarding", t.id, err)
			rec.State = jPrepared
			t.discard()
			t.commitErr = err
			t.outcome = settledMsg{Outcome: settledUnknown}
			return
		}
		t.commitErr = t.commit()
		rec.State = jResumed
		if err := t.n.journal.write(rec); err != nil {
			t.n.logf("hand-off %x: %v", t.id, err)
		}
		t.outcome = settledMsg{Outcome: settledResumed, Addrs: t.added, Conns: uint32(len(t.restored))}
	})
	<-t.decided
	return t.outcome
}

// finish closes the journal's record of a hand-off that served here.
func (t *target) finish() {
	if t.outcome.Outcome == settledResumed {
		t.finishOnce.Do(func() { t.n.journal.finish(t.rec) })
	}
}

// moving lists the addresses this target takes at the commit.
func (t *target) moving() []netip.Addr {
	var out []netip.Addr
	for i, a := range t.addrs {
		if t.coming[i] && !t.isRefused(a) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// prepare reads the source's Prepare, checks it against this node, makes
// room for the sockets and answers Ready. end frees the node for the next
// hand-off.
func (t *target) prepare(ctx context.Context, typ uint8, payload []byte) (end func(), err error) {
	if typ != msgPrepare {
		return nil, fmt.Errorf("expected prepare, got %s", msgName(typ))
	}
	var prep prepareMsg
	if err := prep.decode(payload); err != nil {
		return nil, t.refuse(err)
	}
	if !t.n.begin() {
		return nil, t.refuse(ErrBusy)
	}
	// Free before the last answer, so the source may start the next
	// hand-off (even back to us) as soon as it has it.
	end = sync.OnceFunc(t.n.end)
	if err := t.accept(ctx, prep); err != nil {
		end()
		return nil, t.refuse(err)
	}
	if err := t.ch.sendResult(msgReady, resultMsg{OK: true, Name: t.n.cfg.Name, MAC: t.n.HardwareAddr()}); err != nil {
		end()
		return nil, err
	}
	return end, nil
}

// accept takes on what the source proposes: services this node has, on
// the addresses they have here.
func (t *target) accept(ctx context.Context, prep prepareMsg) error {
	// An address may come back here: our last catcher must stop forwarding.
	t.n.stopForwarding()
	if len(prep.Addrs) != len(prep.Services) {
		return fmt.Errorf("%d services with %d addresses", len(prep.Services), len(prep.Addrs))
	}
	for i, name := range prep.Services {
		svc, ok := t.n.service(name)
		if !ok {
			return fmt.Errorf("no service %q here", name)
		}
		if a := prep.Addrs[i].Unmap(); a != t.n.AddrOf(name) {
			return fmt.Errorf("service %s: address %v is not its address here (%v)", name, a, t.n.AddrOf(name))
		}
		t.services = append(t.services, svc)
		t.addrs = append(t.addrs, t.n.AddrOf(name))
	}
	t.shared = make([][]byte, len(t.services))
	t.coming = make([]bool, len(t.services))
	t.refused = map[netip.Addr]string{}
	t.flags = prep.Flags
	t.id = prep.ID
	// The record opens now, off the switch: each later step is one write.
	t.rec = &record{ID: t.id, Role: "target", Peer: addrOf(t.raw.RemoteAddr()), State: jPrepared}
	if err := t.n.journal.write(t.rec); err != nil {
		return err
	}
	// Room for every socket that may come, now, while the clients are
	// still served: growing the descriptor table during the restore
	// stalls the whole process (see fdtable).
	if err := fdtable.Reserve(min(int(prep.Conns), MaxConns)); err != nil {
		t.n.logf("incoming hand-off: %v", err)
	}
	if t.flags&flagPaced != 0 {
		// A person clicks through the phases: minutes, not seconds.
		t.raw.SetDeadline(time.Now().Add(PacedTimeout))
	}
	return at(ctx, "target-prepare", t.n.cfg.Hook)
}

// receive takes the services' states and the connections, restoring them
// as they come, until the transfer is done (or the source aborts).
func (t *target) receive() (aborted bool, err error) {
	for {
		typ, payload, err := t.ch.Recv()
		if err != nil {
			t.discard()
			return false, fmt.Errorf("during transfer: %w", err)
		}
		if t.restoreStart.IsZero() {
			t.restoreStart = time.Now()
		}
		switch typ {
		case msgService:
			t.onService(payload)
		case msgConns:
			t.onConns(payload)
		case msgTransferDone:
			t.wanted = decodeClients(payload)
			return false, nil
		case msgAbort:
			return true, t.abort()
		default:
			t.discard()
			return false, fmt.Errorf("unexpected %s during transfer", msgName(typ))
		}
	}
}

// abort discards what was rebuilt and tells the source.
func (t *target) abort() error {
	t.discard()
	t.end()
	return t.ch.sendResult(msgAborted, resultMsg{OK: true})
}

// reportRestored finishes the restore and says to the source what was
// rebuilt (still frozen) and which addresses are refused.
func (t *target) reportRestored(ctx context.Context) error {
	t.waitRestorers()
	t.dropRefused()
	// No address is taken here: the sockets are transparent until the
	// commit, so a target that dies before it leaves nothing behind (its
	// kernel would answer the client's ARP, then its packets with RSTs).
	restored := time.Since(t.restoreStart)
	if t.failed == nil {
		t.failed = at(ctx, StepTargetRestore, t.n.cfg.Hook)
	}
	if t.failed != nil {
		t.discard()
		t.ch.sendResult(msgRestored, resultMsg{Reason: t.failed.Error()})
		return t.failed
	}
	err := t.ch.sendResult(msgRestored, resultMsg{OK: true, Conns: uint32(len(t.restored)),
		Timing: []uint64{uint64(restored.Microseconds())}, Extra: encodeAfter(t.readBack()), Refused: t.refusals()})
	if err != nil {
		t.discard()
		return err
	}
	warmAddrs(t.n.net, t.moving())
	return nil
}

// warmAddrs asks the kernel about the first of addrs while a hand-off
// waits on its peer, so that the address change that follows, on the path
// every client waits on, runs warm: after 30 ms idle the first change of
// an address took 110-160 µs here, after a query 50-90 µs (the second
// change, 10-25 µs either way; vip's BenchmarkAddAfterIdle). The answer
// is not needed.
func warmAddrs(hn hostNet, addrs []netip.Addr) {
	if len(addrs) > 0 {
		hn.Held(addrs[0])
	}
}

// decision waits for the source's Commit or Abort on the channel.
func (t *target) decision() (commit bool, err error) {
	typ, _, err := t.ch.Recv()
	switch {
	case err != nil:
		return false, fmt.Errorf("waiting for the decision: %w", err)
	case typ == msgAbort:
		return false, nil
	case typ != msgCommit:
		return false, fmt.Errorf("unexpected %s while waiting for the decision", msgName(typ))
	}
	return true, nil
}

// commit goes forward only. The addresses are announced only now (and,
// paced, taken): a target that dies before the decision must not leave
// the clients pointed at a host whose kernel would answer them with RSTs.
// And they are announced before any socket leaves repair mode, so the
// window probe that repair-off sends draws its answer here, not to the
// old MAC.
func (t *target) commit() error {
	start := time.Now()
	var errs []error
	if !t.addAddrs() {
		errs = append(errs, t.failed)
	}
	if !skip(StepAnnounce, t.n.cfg.Hook) {
		for _, a := range t.added {
			if err := t.n.net.Announce(a); err != nil {
				errs = append(errs, fmt.Errorf("announce: %w", err))
			}
		}
	}
	announced := time.Since(start)
	// From here a death may take connections with it (a socket out of
	// repair mode dies with the process): the journal says so.
	t.rec.State = jResuming
	if err := t.n.journal.write(t.rec); err != nil {
		t.n.logf("hand-off %x: %v", t.id, err)
	}
	errs = append(errs, t.resume())
	t.timing = []uint64{uint64(announced.Microseconds()), uint64((time.Since(start) - announced).Microseconds())}
	return errors.Join(errs...)
}

// readBack inspects a few restored sockets, still frozen, for the report:
// proof that what was rebuilt is what was dumped. It must not make them
// send (see repair.Restored.Inspect).
func (t *target) readBack() map[netip.AddrPort]TCPSummary {
	out := map[netip.AddrPort]TCPSummary{}
	for _, r := range t.restored {
		if !t.wanted[r.client] {
			continue
		}
		if st, recvLen, err := r.restored.Inspect(); err == nil {
			sum := summarize(st)
			sum.RecvQueue = recvLen
			out[r.client] = sum
		}
	}
	return out
}

func (t *target) refuse(err error) error {
	t.ch.sendResult(msgRefused, resultMsg{Reason: err.Error(), Name: t.n.cfg.Name})
	return err
}

func (t *target) onService(payload []byte) {
	var m serviceMsg
	if err := m.decode(payload); err != nil {
		t.fail(err)
		return
	}
	if int(m.Index) >= len(t.services) {
		t.fail(fmt.Errorf("service index %d out of range", m.Index))
		return
	}
	t.shared[m.Index] = m.Shared
	t.coming[m.Index] = true
	t.incoming += int(m.Conns)
	// What Adopt would refuse after the commit is refused now, while the
	// source can keep it.
	if c, ok := t.services[m.Index].(SharedChecker); ok {
		if err := c.CheckShared(m.Shared); err != nil {
			t.mu.Lock()
			if a := t.addrs[m.Index]; t.refused[a] == "" {
				t.refused[a] = fmt.Sprintf("service %s: its shared snapshot: %v", t.services[m.Index].Name(), err)
			}
			t.mu.Unlock()
		}
	}
}

func (t *target) onConns(payload []byte) {
	if t.failedYet() {
		return // drain the rest; the source learns of the failure at the end
	}
	entries, err := decodeConns(payload)
	if err != nil {
		t.fail(err)
		return
	}
	if t.received+len(entries) > MaxConns {
		t.fail(fmt.Errorf("more than %d connections", MaxConns))
		return
	}
	t.received += len(entries)
	t.startRestorers()
	for _, e := range entries {
		if int(e.Service) >= len(t.services) || !t.coming[e.Service] {
			t.fail(fmt.Errorf("connection of service index %d, whose state did not come", e.Service))
			return
		}
		t.jobs <- e
	}
}

// startRestorers starts the workers that rebuild sockets as their states
// arrive, so restoring overlaps the source's dumping.
func (t *target) startRestorers() {
	if t.jobs != nil {
		return
	}
	// The exact count, should the prepare's hint have fallen short: one
	// growth here instead of one per doubling.
	if err := fdtable.Reserve(min(t.incoming, MaxConns)); err != nil {
		t.n.logf("incoming hand-off: %v", err)
	}
	t.jobs = make(chan connEntry, batchConns)
	for w := 0; w < workers(MaxConns); w++ {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			for e := range t.jobs {
				if t.failedYet() {
					continue
				}
				r, st, err := t.restoreOne(e)
				t.mu.Lock()
				var refusal *refusedConn
				switch {
				case errors.As(err, &refusal):
					addr := t.addrs[e.Service]
					if t.refused[addr] == "" {
						t.refused[addr] = refusal.Error()
					}
				case err != nil && t.failed == nil:
					t.failed = err
				}
				if err == nil {
					t.restored = append(t.restored, restoredConn{client: st.Remote, svc: int(e.Service), restored: r, app: e.App, unsent: st.Unsent, fresh: e.New})
				}
				t.mu.Unlock()
			}
		}()
	}
}

// waitRestorers waits until every received state is restored (or failed).
func (t *target) waitRestorers() {
	if t.jobs != nil {
		close(t.jobs)
		t.wg.Wait()
		t.jobs = nil
	}
}

func (t *target) restoreOne(e connEntry) (*repair.Restored, *repair.State, error) {
	// The queues stay in the frame they came in until the kernel has them.
	st, err := repair.DecodeState(e.TCP)
	if err != nil {
		return nil, nil, err
	}
	if addr := t.addrs[e.Service]; st.Local.Addr() != addr {
		return nil, nil, &refusedConn{st.Remote, fmt.Errorf("connected to %v, not to its service's address %v", st.Local, addr)}
	}
	if err := at(context.Background(), RestoreConn(st.Remote), t.n.cfg.Hook); err != nil {
		return nil, nil, &refusedConn{st.Remote, err}
	}
	if c, ok := t.services[e.Service].(ConnChecker); ok && !e.New {
		if err := c.CheckConn(e.App); err != nil {
			return nil, nil, &refusedConn{st.Remote, fmt.Errorf("its snapshot: %w", err)}
		}
	}
	// The address comes only at the commit: rebuild transparent.
	r, err := repair.Restore(st, &repair.RestoreOptions{Transparent: true})
	if err != nil {
		return nil, nil, &refusedConn{st.Remote, err}
	}
	return r, st, nil
}

func (t *target) failedYet() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed != nil
}

// addAddrs adds the addresses of the services that move, once each.
func (t *target) addAddrs() bool {
	for i, a := range t.addrs {
		if !t.coming[i] || slices.Contains(t.added, a) || t.isRefused(a) {
			continue
		}
		if err := t.n.net.Add(a); err != nil {
			t.fail(err)
			return false
		}
		t.added = append(t.added, a)
	}
	return true
}

func (t *target) isRefused(a netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.refused[a] != ""
}

// refusedConn is a connection this target will not take: its address
// stays with the source, and the rest of the hand-off goes on.
type refusedConn struct {
	client netip.AddrPort
	err    error
}

func (r *refusedConn) Error() string { return fmt.Sprintf("connection %v: %v", r.client, r.err) }
func (r *refusedConn) Unwrap() error { return r.err }

// dropRefused discards what was rebuilt on refused addresses and lets the
// addresses go, before the source takes them back. With every address
// refused, the hand-off fails.
func (t *target) dropRefused() {
	if len(t.refused) == 0 {
		return
	}
	kept := t.restored[:0]
	for _, r := range t.restored {
		if t.refused[t.addrs[r.svc]] == "" {
			kept = append(kept, r)
			continue
		}
		if err := r.restored.Discard(); err != nil {
			t.n.logf("discard: %v", err)
		}
	}
	clear(t.restored[len(kept):])
	t.restored = kept
	t.added = slices.DeleteFunc(t.added, func(a netip.Addr) bool {
		if t.refused[a] == "" {
			return false
		}
		if err := t.n.net.Remove(a); err != nil {
			t.n.logf("refused %v: %v", a, err)
		}
		return true
	})
	for i, a := range t.addrs {
		if t.coming[i] && t.refused[a] == "" {
			return // something still moves
		}
	}
	t.fail(fmt.Errorf("every service address refused: %v", t.refused))
}

// refusals lists the refused addresses for the source.
func (t *target) refusals() []refusal {
	var out []refusal
	for a, why := range t.refused {
		out = append(out, refusal{Addr: a, Reason: why})
	}
	return out
}

func (t *target) fail(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed == nil {
		t.failed = err
	}
}

// discard rolls the target back: restored sockets close silently (still in
// repair mode) and the VIP goes.
func (t *target) discard() {
	t.waitRestorers()
	// The addresses go first: with an address still here and the sockets
	// gone, a client segment that reached us would be answered with a RST.
	for _, a := range t.added {
		if err := t.n.net.Remove(a); err != nil {
			t.n.logf("rollback: %v", err)
		}
	}
	t.added = nil
	for _, r := range t.restored {
		if err := r.restored.Discard(); err != nil {
			t.n.logf("discard: %v", err)
		}
	}
	t.restored = nil
}

// resume takes every restored socket out of repair mode and hands them to
// their services.
func (t *target) resume() error {
	conns := make([]*net.TCPConn, len(t.restored))
	errs := make([]error, len(t.restored))
	forEach(len(t.restored), func(i int) {
		conns[i], errs[i] = t.restored[i].restored.Activate()
	})

	byService := make([][]Adopted, len(t.services))
	for i, r := range t.restored {
		if errs[i] == nil {
			byService[r.svc] = append(byService[r.svc], Adopted{Conn: conns[i], State: r.app, Unsent: r.unsent, New: r.fresh})
		}
	}
	for i, svc := range t.services {
		if !t.coming[i] || t.refused[t.addrs[i]] != "" {
			continue
		}
		if err := svc.Adopt(t.shared[i], byService[i]); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", svc.Name(), err))
		}
	}
	return errors.Join(errs...)
}
