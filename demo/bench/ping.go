package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/sockshift/sockshift/demo/client"
	"github.com/sockshift/sockshift/demo/internal/wait"
	"io"
	"net"
	"time"
)

// pingSize is one ping-pong message.
const pingSize = 64

// stallLimit is how long a ping may wait before the client gives up on
// its connection.
const stallLimit = 10 * time.Second

// pinger sends numbered messages back to back on one connection and
// records each round trip, until ctx is done or the connection fails.
type pinger struct {
	c      net.Conn
	origin time.Time
	rts    []roundTrip
	err    error // why it stopped early; nil when ctx ended it
	seq    uint64
}

func (p *pinger) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() { p.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msg := make([]byte, pingSize)
	got := make([]byte, pingSize)
	for ctx.Err() == nil {
		p.seq++
		binary.BigEndian.PutUint64(msg, p.seq)
		pattern(msg[8:], p.seq<<20)
		p.c.SetDeadline(time.Now().Add(stallLimit))
		if ctx.Err() != nil {
			return
		}
		sent := time.Since(p.origin)
		_, err := p.c.Write(msg)
		if err == nil {
			_, err = io.ReadFull(p.c, got)
		}
		done := time.Since(p.origin)
		if err != nil {
			if ctx.Err() == nil {
				p.err = fmt.Errorf("ping %d: %w", p.seq, err)
			}
			return
		}
		if !bytes.Equal(got, msg) {
			p.err = fmt.Errorf("ping %d: the echo differs from what was sent", p.seq)
			return
		}
		p.rts = append(p.rts, roundTrip{sent, done})
	}
}

// ping runs the ping-pong client while the servers hand its connection
// back and forth.
func (b *bench) ping(ctx context.Context, res *Result) error {
	n := b.cfg.Handoffs
	b.progressf("ping-pong: 1 connection, %d-byte messages back to back, %d hand-offs %v apart", pingSize, n, b.cfg.Pause)
	c, err := b.dial(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", echoAddr(), err)
	}
	defer c.Close()
	origin := time.Now()
	p := &pinger{c: c, origin: origin}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.run(pctx)
	}()
	pr := &res.Ping
	var ws []window
	var totals []int64
	time.Sleep(100 * time.Millisecond) // round trips before the first hand-off
	lastReport := time.Now()
	for i := 0; i < n; i++ {
		if isDone(done) || ctx.Err() != nil {
			break // the connection died, or the run was stopped
		}
		h, err := b.handOff(ctx, origin)
		if err != nil {
			stop()
			<-done
			return err
		}
		pr.PerHandoff = append(pr.PerHandoff, h)
		ws = append(ws, window{time.Duration(h.StartUS) * time.Microsecond, time.Duration(h.EndUS) * time.Microsecond})
		if h.OK {
			totals = append(totals, h.TotalUS)
		} else {
			pr.Failed++
		}
		if k := i + 1; k == n || k%max(1, n/10) == 0 || time.Since(lastReport) > 3*time.Second {
			lastReport = time.Now()
			d := summarize(totals)
			b.progressf("ping-pong: %d/%d hand-offs, server freeze→resume p50 %s max %s, %d failed",
				k, n, usAsMS(d.P50), usAsMS(d.Max), pr.Failed)
		}
		wait.Sleep(ctx, b.cfg.Pause)
	}
	wait.Sleep(ctx, 100*time.Millisecond)
	stop()
	<-done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if rt, _, err := client.Retransmits(c); err == nil {
		pr.ClientRetransmits = rt
	}
	if p.err != nil {
		pr.Error = fmt.Sprintf("the ping-pong connection failed after %d hand-offs: %v", len(ws), p.err)
	}
	gaps := attributeGaps(p.rts, ws)
	for i := range gaps {
		pr.PerHandoff[i].GapUS = gaps[i].Microseconds()
	}
	us := micros(gaps)
	pr.Handoffs = len(ws)
	pr.GapUS = summarize(us)
	for _, g := range us {
		if g >= StallUS {
			pr.Stalls++
		}
	}
	pr.ServerTotalUS = summarize(totals)
	pr.NormalRTTUS = summarize(outside(p.rts, ws))
	pr.Pings = len(p.rts)
	pr.rts = p.rts
	b.progressf("ping-pong: gap p50 %s p90 %s max %s, %d stalls >= %s", usAsMS(pr.GapUS.P50), usAsMS(pr.GapUS.P90), usAsMS(pr.GapUS.Max), pr.Stalls, usAsMS(StallUS))
	c.Close()
	return b.waitIdle(ctx)
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// usAsMS formats microseconds as milliseconds ("1.25 ms").
func usAsMS(us int64) string {
	switch v := float64(us) / 1000; {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 100:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.0f ms", v)
	}
}
