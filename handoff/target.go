package handoff

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sockshift/sockshift/handoff/repair"
	"github.com/sockshift/sockshift/handoff/vip"
	"github.com/sockshift/sockshift/handoff/wire"
)

// restoredConn is one connection rebuilt here, still frozen.
type restoredConn struct {
	svc      int
	restored *repair.Restored
	app      []byte
	unsent   []byte
}

// target is the state of one incoming hand-off, so a rollback knows exactly
// what to discard.
type target struct {
	n        *Node
	ch       channel
	services []Service // index as the source numbered them
	shared   [][]byte
	restored []restoredConn
	vipAdded bool
	failed   error // first restore failure; later messages are drained
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
	t := &target{n: n, ch: channel{wc}}
	if err := t.run(ctx); err != nil {
		n.logf("incoming hand-off from %v: %v", raw.RemoteAddr(), err)
	}
}

func (t *target) run(ctx context.Context) error {
	typ, payload, err := t.ch.Recv()
	if err != nil {
		return err
	}
	if typ != msgPrepare {
		return fmt.Errorf("expected prepare, got %s", msgName(typ))
	}
	var prep prepareMsg
	if err := prep.decode(payload); err != nil {
		return t.refuse(err)
	}
	if !t.n.begin() {
		return t.refuse(ErrBusy)
	}
	defer t.n.end()
	if prep.VIP != t.n.cfg.VIP {
		return t.refuse(fmt.Errorf("VIP %v is not ours (%v)", prep.VIP, t.n.cfg.VIP))
	}
	for _, name := range prep.Services {
		svc, ok := t.n.service(name)
		if !ok {
			return t.refuse(fmt.Errorf("no service %q here", name))
		}
		t.services = append(t.services, svc)
	}
	t.shared = make([][]byte, len(t.services))
	if err := t.n.fault("target-prepare"); err != nil {
		return t.refuse(err)
	}
	if err := t.ch.sendResult(msgReady, resultMsg{OK: true, Name: t.n.cfg.Name}); err != nil {
		return err
	}

	restoreStart := time.Time{}
	for done := false; !done; {
		typ, payload, err := t.ch.Recv()
		if err != nil {
			t.discard()
			return fmt.Errorf("during transfer: %w", err)
		}
		if restoreStart.IsZero() {
			restoreStart = time.Now()
		}
		switch typ {
		case msgService:
			t.onService(payload)
		case msgConn:
			t.onConn(payload)
		case msgTransferDone:
			done = true
		case msgAbort:
			t.discard()
			return t.ch.sendResult(msgAborted, resultMsg{OK: true})
		default:
			t.discard()
			return fmt.Errorf("unexpected %s during transfer", msgName(typ))
		}
	}
	if t.failed == nil {
		t.addVIP() // no connections: the address moves all the same
	}
	restored := time.Since(restoreStart)

	if t.failed == nil {
		t.failed = t.n.fault("target-restore")
	}
	if t.failed != nil {
		t.discard()
		t.ch.sendResult(msgRestored, resultMsg{Reason: t.failed.Error()})
		return t.failed
	}
	if err := t.ch.sendResult(msgRestored, resultMsg{OK: true, Conns: uint32(len(t.restored)),
		Timing: []uint64{uint64(restored.Microseconds())}}); err != nil {
		t.discard()
		return err
	}

	typ, _, err = t.ch.Recv()
	switch {
	case err != nil:
		t.discard()
		return fmt.Errorf("waiting for the decision: %w", err)
	case typ == msgAbort:
		t.discard()
		return t.ch.sendResult(msgAborted, resultMsg{OK: true})
	case typ != msgCommit:
		t.discard()
		return fmt.Errorf("unexpected %s while waiting for the decision", msgName(typ))
	}

	// Committed: only forward from here. The VIP is announced only now: a
	// target that dies before the decision must not leave the clients
	// pointed at a host that would answer them with RSTs. And it is
	// announced before any socket leaves repair mode, so the window probe
	// that repair-off sends draws its answer here, not to the old MAC.
	start := time.Now()
	var errs []error
	if err := t.n.ann.Announce(t.n.cfg.VIP); err != nil {
		errs = append(errs, fmt.Errorf("announce: %w", err))
	}
	announced := time.Since(start)
	errs = append(errs, t.resume())
	err = errors.Join(errs...)
	res := resultMsg{OK: err == nil, Conns: uint32(len(t.restored)),
		Timing: []uint64{uint64(announced.Microseconds()), uint64((time.Since(start) - announced).Microseconds())}}
	if err != nil {
		res.Reason = err.Error()
	}
	if serr := t.ch.sendResult(msgResumed, res); serr != nil {
		t.n.logf("report resume to source: %v", serr)
	}
	return err
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
}

func (t *target) onConn(payload []byte) {
	if t.failed != nil {
		return
	}
	if len(t.restored) >= MaxConns {
		t.fail(fmt.Errorf("more than %d connections", MaxConns))
		return
	}
	var m connMsg
	if err := m.decode(payload); err != nil {
		t.fail(err)
		return
	}
	if int(m.Service) >= len(t.services) {
		t.fail(fmt.Errorf("service index %d out of range", m.Service))
		return
	}
	var st repair.State
	if err := st.UnmarshalBinary(m.TCP); err != nil {
		t.fail(err)
		return
	}
	if st.Local.Addr() != t.n.cfg.VIP {
		t.fail(fmt.Errorf("connection %v is not on the VIP", st.Local))
		return
	}
	// The restored sockets bind the VIP, so it must be ours first.
	if !t.addVIP() {
		return
	}
	r, err := repair.Restore(&st, nil)
	if err != nil {
		t.fail(err)
		return
	}
	t.restored = append(t.restored, restoredConn{svc: int(m.Service), restored: r, app: m.App, unsent: st.Unsent})
}

func (t *target) addVIP() bool {
	if t.vipAdded {
		return true
	}
	if err := vip.Add(t.n.cfg.Interface, t.n.cfg.VIP); err != nil {
		t.fail(err)
		return false
	}
	t.vipAdded = true
	return true
}

func (t *target) fail(err error) {
	if t.failed == nil {
		t.failed = err
	}
}

// discard rolls the target back: restored sockets close silently (still in
// repair mode) and the VIP goes.
func (t *target) discard() {
	for _, r := range t.restored {
		if err := r.restored.Discard(); err != nil {
			t.n.logf("discard: %v", err)
		}
	}
	t.restored = nil
	if t.vipAdded {
		if err := vip.Remove(t.n.cfg.Interface, t.n.cfg.VIP); err != nil {
			t.n.logf("rollback: %v", err)
		}
		t.vipAdded = false
	}
}

// resume takes every restored socket out of repair mode and hands them to
// their services.
func (t *target) resume() error {
	byService := make([][]Adopted, len(t.services))
	var errs []error
	for _, r := range t.restored {
		c, err := r.restored.Activate()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byService[r.svc] = append(byService[r.svc], Adopted{Conn: c, State: r.app, Unsent: r.unsent})
	}
	for i, svc := range t.services {
		if err := svc.Adopt(t.shared[i], byService[i]); err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", svc.Name(), err))
		}
	}
	return errors.Join(errs...)
}
