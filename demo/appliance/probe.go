package appliance

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sockshift/sockshift/web"
)

// probe is the console's own ping client: one connection to the echo
// service, dialled from the client's namespace, a small message every
// interval, each round trip timed. It feeds the live graph and measures
// the client-visible gap of a hand-off.
type probe struct {
	dial     func(ctx context.Context) (net.Conn, error)
	interval time.Duration
	keep     time.Duration // how long round trips are remembered

	mu      sync.Mutex
	trips   []trip // oldest first
	pending time.Time
	fresh   [][2]int64 // round trips not yet published
	// conns are the probe's connections, newest last: a hand-off broken on
	// purpose resets one, and the capture follows the one it affected.
	conns   []probeConn
	errors  int
	lastErr string
}

type probeConn struct {
	local netip.AddrPort
	since time.Time
}

type trip struct{ sent, recv time.Time }

const (
	probeInterval = 25 * time.Millisecond
	probeMsg      = 16
	// probeStall bounds one round trip: a step-mode hand-off pauses the
	// client for as long as the class talks.
	probeStall = 5 * time.Minute
)

func newProbe(dial func(ctx context.Context) (net.Conn, error)) *probe {
	return &probe{dial: dial, interval: probeInterval, keep: 10 * time.Minute}
}

// run pings until ctx is done, reconnecting after an error.
func (p *probe) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := p.session(ctx)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		p.errors++
		p.lastErr = err.Error()
		if !p.pending.IsZero() {
			// A round trip that never came back lasted until the error:
			// the client saw the service gone for that long.
			p.mu.Unlock()
			p.record(trip{p.pending, time.Now()})
			p.mu.Lock()
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (p *probe) session(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	conn, err := p.dial(dctx)
	cancel()
	if err != nil {
		return fmt.Errorf("probe: dial: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil {
		p.mu.Lock()
		p.conns = append(p.conns, probeConn{ap, time.Now()})
		if len(p.conns) > 64 {
			p.conns = p.conns[len(p.conns)-64:]
		}
		p.mu.Unlock()
	}
	msg, echo := make([]byte, probeMsg), make([]byte, probeMsg)
	for n := uint64(0); ; n++ {
		binary.BigEndian.PutUint64(msg, n)
		sent := time.Now()
		p.mu.Lock()
		p.pending = sent
		p.mu.Unlock()
		conn.SetDeadline(sent.Add(probeStall))
		if _, err := conn.Write(msg); err != nil {
			return fmt.Errorf("probe: write: %w", err)
		}
		if _, err := io.ReadFull(conn, echo); err != nil {
			return fmt.Errorf("probe: read: %w", err)
		}
		recv := time.Now()
		if !bytes.Equal(msg, echo) {
			return fmt.Errorf("probe: the echo of ping %d differs", n)
		}
		p.record(trip{sent, recv})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(sent.Add(p.interval))):
		}
	}
}

func (p *probe) record(t trip) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = time.Time{}
	p.trips = append(p.trips, t)
	p.fresh = append(p.fresh, [2]int64{t.sent.UnixMilli(), t.recv.Sub(t.sent).Microseconds()})
	if len(p.fresh) > 4096 { // nobody collects them
		p.fresh = p.fresh[len(p.fresh)-4096:]
	}
	cut := 0
	for cut < len(p.trips) && t.recv.Sub(p.trips[cut].recv) > p.keep {
		cut++
	}
	if cut > len(p.trips)/2 {
		p.trips = append([]trip(nil), p.trips[cut:]...)
	}
}

// take returns the round trips since the last call.
func (p *probe) take() [][2]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fresh
	p.fresh = nil
	return f
}

// late returns how long the current round trip has been waiting, if it
// is late (several intervals); 0 otherwise.
func (p *probe) late(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pending.IsZero() || now.Sub(p.pending) < 4*p.interval {
		return 0
	}
	return now.Sub(p.pending)
}

// connAt returns the probe's own address on the connection it had at t
// (the zero AddrPort if none).
func (p *probe) connAt(t time.Time) netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	var a netip.AddrPort
	for _, c := range p.conns {
		if !c.since.After(t) {
			a = c.local
		}
	}
	return a
}

// gap returns the longest round trip that overlapped [start, end], a
// round trip still waiting counting until now; 0 if none.
func (p *probe) gap(start, end time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return longestOverlap(p.trips, p.pending, start, end, time.Now())
}

func longestOverlap(trips []trip, pending time.Time, start, end, now time.Time) time.Duration {
	var g time.Duration
	for _, t := range trips {
		if !t.sent.After(end) && !t.recv.Before(start) {
			g = max(g, t.recv.Sub(t.sent))
		}
	}
	if !pending.IsZero() && !pending.After(end) {
		g = max(g, now.Sub(pending))
	}
	return g
}

// publishSamples pushes the probe's round trips and the throughput seen on
// the client's wire to the console a few times a second.
func (a *Appliance) publishSamples(ctx context.Context) {
	const period = 250 * time.Millisecond
	t := time.NewTicker(period)
	defer t.Stop()
	lastUp, lastDown, last := a.up.Load(), a.down.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			up, down := a.up.Load(), a.down.Load()
			secs := now.Sub(last).Seconds()
			s := web.Sample{RTT: a.probe.take(), At: now.UnixMilli(),
				Up: int64(float64(up-lastUp) / secs), Down: int64(float64(down-lastDown) / secs)}
			s.WaitingUS = a.probe.late(now).Microseconds()
			if s.RTT == nil {
				s.RTT = [][2]int64{}
			}
			lastUp, lastDown, last = up, down, now
			a.console.Publish(web.Event{Type: "sample", Data: s})
		}
	}
}
