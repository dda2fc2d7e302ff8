package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/sockshift/sockshift/demo/internal/wait"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/sockshift/sockshift/demo/node"
)

// BaselineResult is the plain fail-over a user has without sockshift: the
// server closes every connection and drops the VIP, the other server takes
// it, and the client reconnects.
type BaselineResult struct {
	Failovers int `json:"failovers"`
	// GapUS is measured as the hand-off gap is: from the last round trip
	// completed on the old connection to the first on the new one.
	GapUS Dist `json:"gap_us"`
	// OutageUS runs from the fail-over (the server closing every
	// connection) to the client's first round trip on a new connection.
	OutageUS Dist `json:"outage_us"`
	// Causes counts how the client learned its connection was gone:
	// "closed" (FIN), "reset" (RST), "timeout", or the error.
	Causes map[string]int `json:"causes"`
	// Lost, summed over the fail-overs: connections (each one's TCP state
	// and the server's state for it), bytes sent but never echoed, and the
	// connect attempts and connections the client needed to talk again.
	ConnectionsLost int    `json:"connections_lost"`
	BytesLost       uint64 `json:"bytes_lost"`
	Dials           int    `json:"dials"`
	Error           string `json:"error,omitempty"`

	PerFailover []Failover `json:"per_failover"`
}

// Failover is one plain fail-over as the client saw it.
type Failover struct {
	From        string `json:"from"`
	To          string `json:"to"`
	StartUS     int64  `json:"start_us"` // the fail-over was ordered
	LastOKUS    int64  `json:"last_ok_us"`
	BrokeUS     int64  `json:"broke_us"`     // the client saw the connection end
	RecoveredUS int64  `json:"recovered_us"` // first round trip on a new connection
	GapUS       int64  `json:"gap_us"`
	OutageUS    int64  `json:"outage_us"`
	Cause       string `json:"cause"`       // how the client learned the connection ended
	Error       string `json:"error"`       // what its socket said
	Connections int    `json:"connections"` // connections lost: more than one when a new one broke too
	Dials       int    `json:"dials"`
	BytesLost   uint64 `json:"bytes_lost"`
}

// episode is one outage as the reconnecting client lives it.
type episode struct {
	lastOK, broke, recovered time.Duration
	err                      error // the first failure
	conns, dials             int
	lost                     uint64
}

// reconnectingPinger pings back to back like pinger, and when its
// connection ends, reconnects until it talks again, as a client without
// sockshift must. It reports each outage once it is over.
type reconnectingPinger struct {
	dial     func(context.Context) (net.Conn, error)
	origin   time.Time
	episodes chan<- episode
	err      error // a wrong echo, or no way back
}

func (p *reconnectingPinger) run(ctx context.Context, c net.Conn) {
	msg := make([]byte, pingSize)
	got := make([]byte, pingSize)
	unhook := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		unhook()
		if c != nil {
			c.Close()
		}
	}()
	var ep *episode
	lastOK := time.Since(p.origin)
	var seq, sent, echoed uint64
	for ctx.Err() == nil {
		if c == nil {
			ep.dials++
			nc, err := p.dial(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if ep.dials > 100 {
					p.err = fmt.Errorf("no connection after %d attempts: %w", ep.dials, err)
					return
				}
				wait.Sleep(ctx, 10*time.Millisecond)
				continue
			}
			c, sent, echoed = nc, 0, 0
			unhook = context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
		}
		seq++
		binary.BigEndian.PutUint64(msg, seq)
		pattern(msg[8:], seq<<20)
		c.SetDeadline(time.Now().Add(stallLimit))
		n, err := c.Write(msg)
		sent += uint64(n)
		if err == nil {
			n, err = io.ReadFull(c, got)
			echoed += uint64(n)
		}
		now := time.Since(p.origin)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if ep == nil {
				ep = &episode{lastOK: lastOK, broke: now, err: err}
			}
			ep.conns++
			ep.lost += sent - echoed
			unhook()
			c.Close()
			c = nil
			continue
		}
		if !bytes.Equal(got, msg) {
			p.err = fmt.Errorf("ping %d: the echo differs from what was sent", seq)
			return
		}
		lastOK = now
		if ep != nil {
			ep.recovered = now
			select {
			case p.episodes <- *ep:
			case <-ctx.Done():
				return
			}
			ep = nil
		}
	}
}

func (b *bench) baseline(ctx context.Context, res *Result) error {
	k := b.cfg.Baseline
	b.progressf("baseline: %d plain fail-overs (close every connection, move the VIP, the client reconnects)", k)
	br := &res.Baseline
	origin := time.Now()
	episodes := make(chan episode)
	first, err := b.dial(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", echoAddr(), err)
	}
	p := &reconnectingPinger{dial: b.dial, origin: origin, episodes: episodes}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.run(pctx, first)
	}()
	defer func() {
		stop()
		<-done
	}()
	var gaps, outages []int64
	br.Causes = map[string]int{}
	for i := 0; i < k && ctx.Err() == nil; i++ {
		wait.Sleep(ctx, 200*time.Millisecond) // talking steadily before each fail-over
		from, to := b.holder, other(b.holder)
		f := Failover{From: from, To: to, StartUS: time.Since(origin).Microseconds()}
		if err := b.failover(ctx, from, to); err != nil {
			return err
		}
		var ep episode
		select {
		case ep = <-episodes:
		case <-done:
			br.Error = fmt.Sprintf("fail-over %d: the client stopped: %v", i+1, p.err)
		case <-time.After(30 * time.Second):
			br.Error = fmt.Sprintf("fail-over %d: the client did not talk again within 30 s", i+1)
		case <-ctx.Done():
			return ctx.Err()
		}
		if br.Error != "" {
			break
		}
		// A client that reconnected to the old server before the VIP left
		// it breaks again when it does: one fail-over, more than one break.
		// Count them all to this fail-over, not to the next.
		if err := collectMore(ctx, episodes, &ep); err != nil {
			return err
		}
		f.LastOKUS, f.BrokeUS, f.RecoveredUS = ep.lastOK.Microseconds(), ep.broke.Microseconds(), ep.recovered.Microseconds()
		f.GapUS, f.OutageUS = (ep.recovered - ep.lastOK).Microseconds(), f.RecoveredUS-f.StartUS
		f.Cause, f.Error = cause(ep.err), ep.err.Error()
		f.Connections, f.Dials, f.BytesLost = ep.conns, ep.dials, ep.lost
		br.PerFailover = append(br.PerFailover, f)
		br.Causes[f.Cause]++
		gaps, outages = append(gaps, f.GapUS), append(outages, f.OutageUS)
		br.ConnectionsLost += f.Connections
		br.Dials += f.Dials
		br.BytesLost += f.BytesLost
		b.progressf("baseline: %d/%d %s→%s: connection %s, talking again %s after the close (connections lost: %d, dials: %d)",
			i+1, k, from, to, f.Cause, usAsMS(f.OutageUS), f.Connections, f.Dials)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	br.Failovers = len(br.PerFailover)
	br.GapUS = summarize(gaps)
	br.OutageUS = summarize(outages)
	return nil
}

// settleTime is how long a client must talk without breaking again for a
// fail-over to be over.
const settleTime = 300 * time.Millisecond

// collectMore merges into ep the episodes that follow it within
// settleTime of each other.
func collectMore(ctx context.Context, episodes <-chan episode, ep *episode) error {
	for {
		select {
		case next := <-episodes:
			ep.recovered = next.recovered
			ep.conns += next.conns
			ep.dials += next.dials
			ep.lost += next.lost
		case <-time.After(settleTime):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// failover is what a pair of servers without hand-off do: the holder ends
// every connection and lets the VIP go, the other takes it and announces it.
func (b *bench) failover(ctx context.Context, from, to string) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := b.c.Control(from).SetVIP(cctx, node.VIPRequest{Hold: false, CloseConnections: true}); err != nil {
		return fmt.Errorf("fail-over: server %s: %w", from, err)
	}
	if _, err := b.c.Control(to).SetVIP(cctx, node.VIPRequest{Hold: true}); err != nil {
		return fmt.Errorf("fail-over: server %s: %w", to, err)
	}
	b.holder = to
	return nil
}

// cause names how a connection ended, as its socket told the client.
func cause(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return err.Error()
}
