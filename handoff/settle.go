package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/sockshift/sockshift/handoff/wire"
)

// Recovery is one interrupted hand-off that Recover settled (or could
// not), as operators read it.
type Recovery struct {
	ID      uint64
	Role    string // "source" or "target": this node's side of it
	Peer    netip.Addr
	Addrs   []netip.Addr
	Outcome string // what happened, in words
	// Open is true when it could not be settled yet (the peer could not
	// be asked); Recover is tried again by Serve.
	Open bool
}

func (r Recovery) String() string {
	return fmt.Sprintf("hand-off %x (%s, peer %v, %v): %s", r.ID, r.Role, r.Peer, r.Addrs, r.Outcome)
}

// recoverWait bounds how long Recover tries to reach a peer about one
// hand-off before the journal decides alone.
const recoverWait = time.Second

// Recover settles every hand-off this node's journal (Config.StateDir)
// left open when its process died, before the node serves: a node that
// starts calls it once, before it takes or serves any address (Serve calls
// it too, if not yet done). For each open hand-off:
//
//   - as source, released and undecided: its frozen sockets died with the
//     old process, so it tells the target to commit (the connections live
//     on there); if the target discarded them, or cannot be reached at
//     all, the addresses come back here;
//   - as source, decided to commit: it asks the target how it ended, and
//     takes back what the target no longer holds;
//   - as source, rolling back: it takes the addresses back;
//   - as target, committed but not yet serving: its rebuilt sockets died
//     with it, so it removes the addresses again; the source, which still
//     holds its frozen copies if it lives, takes them back when it asks.
//
// It returns what it found and did; Recoveries says the same later.
func (n *Node) Recover(ctx context.Context) ([]Recovery, error) {
	n.mu.Lock()
	if n.recoverDone {
		out := slices.Clone(n.recovered)
		n.mu.Unlock()
		return out, nil
	}
	n.mu.Unlock()
	recs, err := n.journal.read()
	if err != nil {
		return nil, fmt.Errorf("handoff: node %s: %w", n.cfg.Name, err)
	}
	n.journal.seedFinished(recs)
	var out []Recovery
	for _, r := range recs {
		if rv, ok := n.recoverOne(ctx, r); ok {
			n.logf("recovered %v", rv)
			out = append(out, rv)
		}
	}
	n.mu.Lock()
	n.recoverDone = true
	n.recovered = append(n.recovered, out...)
	n.mu.Unlock()
	return out, nil
}

// retryOpen settles, once a second, what Recover could not yet: a peer
// that was down may answer now.
func (n *Node) retryOpen(ctx context.Context) {
	for {
		n.mu.Lock()
		var open []int
		for i, rv := range n.recovered {
			if rv.Open {
				open = append(open, i)
			}
		}
		n.mu.Unlock()
		if len(open) == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		for _, i := range open {
			n.mu.Lock()
			id, role := n.recovered[i].ID, n.recovered[i].Role
			n.mu.Unlock()
			r := n.journal.find(role, id)
			if r == nil {
				n.mu.Lock()
				n.recovered[i].Open = false
				n.mu.Unlock()
				continue
			}
			if rv, ok := n.recoverOne(ctx, r); ok && !rv.Open {
				n.logf("recovered %v", rv)
				n.mu.Lock()
				n.recovered[i] = rv
				n.mu.Unlock()
			}
		}
	}
}

// Recoveries lists what Recover found and did.
func (n *Node) Recoveries() []Recovery {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.recovered)
}

func (n *Node) recoverOne(ctx context.Context, r *record) (Recovery, bool) {
	rv := Recovery{ID: r.ID, Role: r.Role, Peer: r.Peer, Addrs: r.Addrs}
	if r.State == jPrepared {
		n.journal.remove(r) // opened, but nothing irreversible followed
		return rv, false
	}
	if r.Role == "target" {
		if r.State != jCommitted && r.State != jResuming {
			return rv, false // finished: kept only to answer a source
		}
		rv.Outcome = "committed, but this process died before its sockets served: removed the addresses; the source takes them back"
		if r.State == jResuming {
			rv.Outcome = "committed, and this process died while its sockets left repair mode (those died with it): removed the addresses; the source takes them back"
		}
		n.loseTarget(r)
		return rv, true
	}
	switch r.State {
	case jRollback:
		n.takeBack(r, nil)
		n.tellAbort(ctx, r)
		rv.Outcome = "was rolling back: took the addresses back"
	case jReleased:
		// The release may not have happened before the death: finish it,
		// so that the target may take them.
		for _, a := range r.Addrs {
			if err := n.net.Remove(a); err != nil {
				n.logf("recover %x: %v", r.ID, err)
			}
		}
		out, sent, err := n.askSettleFor(ctx, r, recoverWait, func() error {
			// Once a Settle can reach the target, the decision is commit:
			// written down before it goes out.
			r.State = jCommit
			return n.journal.write(r)
		})
		switch {
		case err == nil:
			rv.Outcome = n.applySettled(r, out)
		case !sent:
			r.State = jRollback
			n.journal.write(r)
			n.takeBack(r, nil)
			rv.Outcome = fmt.Sprintf("undecided, and the target cannot be reached (%v): the journal decides, the addresses are back here", err)
		default:
			rv.Outcome = fmt.Sprintf("told the target to commit, and its answer was lost (%v): in doubt, the addresses stay where the target put them", err)
			rv.Open = true
		}
	case jCommit:
		out, _, err := n.askSettleFor(ctx, r, recoverWait, nil)
		if err != nil {
			rv.Outcome = fmt.Sprintf("committed; the target cannot be asked (%v): the journal says it holds the addresses", err)
			rv.Open = true
			break
		}
		rv.Outcome = n.applySettled(r, out)
	default:
		rv.Outcome = "unknown state " + strconv.Quote(r.State) + ": left alone"
		rv.Open = true
	}
	return rv, true
}

// applySettled takes back what the target does not hold, and closes the
// record.
func (n *Node) applySettled(r *record, out settledMsg) string {
	if out.Outcome == settledResumed {
		n.journal.remove(r)
		return fmt.Sprintf("the target serves %d connections on %v", out.Conns, out.Addrs)
	}
	r.State = jRollback
	n.journal.write(r)
	n.takeBack(r, out.Addrs)
	return "the target holds nothing of it: the addresses are back here (the connections died with this process)"
}

// takeBack takes the record's addresses back here, except those the
// target holds, and forgets the record.
func (n *Node) takeBack(r *record, theirs []netip.Addr) {
	var back []netip.Addr
	for _, a := range r.Addrs {
		if !slices.Contains(theirs, a) {
			back = append(back, a)
		}
	}
	if err := n.Take(back...); err != nil {
		n.logf("recover %x: take back %v: %v", r.ID, back, err)
		return
	}
	n.journal.remove(r)
}

// tellAbort tells the target to discard a hand-off, best effort.
func (n *Node) tellAbort(ctx context.Context, r *record) {
	ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	n.askSettle(ctx, r.Peer, settleMsg{ID: r.ID})
}

// askSettleFor asks the peer to commit a hand-off (the only decision a
// source ever sends after its channel broke), retrying until it answers
// or wait runs out. before runs once, just before the first Settle can go
// out. sent says whether any Settle went out: if none did, the target
// cannot have acted on it.
func (n *Node) askSettleFor(ctx context.Context, r *record, wait time.Duration, before func() error) (settledMsg, bool, error) {
	out, a, err := n.askSettleLong(ctx, r, wait, before)
	return out, a.sent, err
}

// settleAttempt is what asking a peer showed, answered or not.
type settleAttempt struct {
	sent    bool // a Settle went out
	refused bool // every dial was refused: no process listens on the peer's channel
}

func (n *Node) askSettleLong(ctx context.Context, r *record, wait time.Duration, before func() error) (settledMsg, settleAttempt, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var last error
	sent := false
	refused := true
	for {
		ch, err := n.dialPeer(ctx, r.Peer)
		if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
			refused = false
		}
		if err == nil && !sent && before != nil {
			if err = before(); err != nil {
				ch.Close()
				return settledMsg{}, settleAttempt{}, err
			}
		}
		if err == nil {
			sent, refused = true, false
			var out settledMsg
			out, err = exchangeSettle(ch, settleMsg{ID: r.ID, Commit: true})
			ch.Close()
			if err == nil && out.Outcome != settledBusy {
				return out, settleAttempt{sent: true}, nil
			}
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				last = ctx.Err()
			}
			return settledMsg{}, settleAttempt{sent: sent, refused: refused}, last
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// askSettle sends one Settle on a new channel and reads the answer.
func (n *Node) askSettle(ctx context.Context, peer netip.Addr, m settleMsg) (settledMsg, error) {
	ch, err := n.dialPeer(ctx, peer)
	if err != nil {
		return settledMsg{}, err
	}
	defer ch.Close()
	return exchangeSettle(ch, m)
}

func exchangeSettle(ch channel, m settleMsg) (settledMsg, error) {
	var out settledMsg
	if err := ch.send(msgSettle, m.encode()); err != nil {
		return out, err
	}
	typ, payload, err := ch.Recv()
	if err != nil {
		return out, fmt.Errorf("waiting for settled: %w", err)
	}
	if typ != msgSettled {
		return out, fmt.Errorf("peer sent %s, want settled", msgName(typ))
	}
	return out, out.decode(payload)
}

// dialPeer opens an authenticated channel to a peer.
func (n *Node) dialPeer(ctx context.Context, peer netip.Addr) (channel, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: n.cfg.Addr.AsSlice()}}
	raw, err := d.DialContext(ctx, "tcp4", net.JoinHostPort(peer.String(), strconv.Itoa(int(n.cfg.Port))))
	if err != nil {
		return channel{}, fmt.Errorf("peer %v unreachable: %w", peer, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	wc, err := wire.Client(raw, n.cfg.Key, nil)
	if err != nil {
		raw.Close()
		return channel{}, fmt.Errorf("peer %v: %w", peer, err)
	}
	return channel{wc}, nil
}

// settleIncoming answers a source's Settle: the decision on a hand-off
// whose channel broke, or the question how it ended here.
func (n *Node) settleIncoming(ch channel, payload []byte) {
	var m settleMsg
	if err := m.decode(payload); err != nil {
		n.logf("settle from %v: %v", ch.RemoteAddr(), err)
		return
	}
	out := n.settleLocal(m)
	n.logf("settle of hand-off %x from %v (commit %v): outcome %d, %v", m.ID, ch.RemoteAddr(), m.Commit, out.Outcome, out.Addrs)
	if err := ch.send(msgSettled, out.encode()); err != nil {
		n.logf("settle from %v: %v", ch.RemoteAddr(), err)
	}
}

func (n *Node) settleLocal(m settleMsg) settledMsg {
	n.mu.Lock()
	t := n.pending[m.ID]
	n.mu.Unlock()
	if t != nil {
		out := t.decide(m.Commit)
		t.finish()
		return out
	}
	r := n.journal.find("target", m.ID)
	switch {
	case r == nil:
		return settledMsg{Outcome: settledUnknown}
	case r.State == jResumed:
		return settledMsg{Outcome: settledResumed, Addrs: r.Addrs}
	case r.State == jCommitted || r.State == jResuming:
		// Committed, yet not pending: the process that did it died
		// (Recover had not run). Same as Recover: let the source have them.
		n.loseTarget(r)
	}
	if r.State == jLostSome {
		return settledMsg{Outcome: settledLostSome}
	}
	return settledMsg{Outcome: settledLost}
}

// loseTarget undoes, after a restart, a commit whose sockets died with
// the old process: the addresses go first (the source takes them back only
// once told), then the record says so.
func (n *Node) loseTarget(r *record) {
	for _, a := range r.Addrs {
		if err := n.net.Remove(a); err != nil {
			n.logf("recover %x: %v", r.ID, err)
		}
	}
	if r.State == jResuming {
		r.State = jLostSome
	} else {
		r.State = jLost
	}
	if err := n.journal.write(r); err != nil {
		n.logf("recover %x: %v", r.ID, err)
	}
	n.journal.release(r)
}

func (n *Node) addPending(t *target) {
	n.mu.Lock()
	n.pending[t.id] = t
	n.mu.Unlock()
}

func (n *Node) removePending(t *target) {
	n.mu.Lock()
	if n.pending[t.id] == t {
		delete(n.pending, t.id)
	}
	n.mu.Unlock()
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

var errTargetLost = errors.New("the target died after the commit, before its sockets served")

// anyoneHolds probes the segment for each address (ARP): whether any host
// answers for one of them. A failed probe counts as held.
func (n *Node) anyoneHolds(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if mac, err := n.net.Probe(a); err != nil || mac != nil {
			return true
		}
	}
	return false
}

// keepAsking settles, in the background, a committed hand-off whose target
// could not be asked: once a second for a minute, until it answers (and
// the addresses it no longer holds come back here) or no host holds them.
func (n *Node) keepAsking(r *record) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for ctx.Err() == nil {
			out, attempt, err := n.askSettleLong(ctx, r, time.Second, nil)
			switch {
			case err == nil:
				n.logf("hand-off %x settled late: %s", r.ID, n.applySettled(r, out))
				return
			case attempt.refused && !n.anyoneHolds(r.Addrs):
				n.logf("hand-off %x: the target is gone and no host holds %v: taking them back", r.ID, r.Addrs)
				n.takeBack(r, nil)
				return
			}
		}
	}()
}
