package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"github.com/sockshift/sockshift/demo/internal/wait"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// BulkResult is one bulk size: N idle connections handed off twice.
type BulkResult struct {
	Conns    int       `json:"conns"`
	Skipped  string    `json:"skipped,omitempty"` // why it did not run
	OpenMS   int64     `json:"open_ms"`           // opening and checking every connection
	Handoffs []Handoff `json:"handoffs"`
	Alive    int       `json:"alive"` // still echoing after the hand-offs
	Error    string    `json:"error,omitempty"`
}

// bulkWorkers open and check connections in parallel.
const bulkWorkers = 64

// fdReserve is what the process needs besides the bulk connections.
const fdReserve = 200

func (b *bench) bulk(ctx context.Context, res *Result) error {
	// The soft limit on open files, which Go raises to the hard limit at
	// start; the servers, Go programs too, raise theirs to the same hard limit.
	limit, lerr := nofile()
	for _, n := range b.cfg.Bulk {
		br := BulkResult{Conns: n}
		if lerr == nil && n+fdReserve > limit {
			br.Skipped = fmt.Sprintf("%d connections need about %d open files, and the limit (RLIMIT_NOFILE) is %d: raise it (ulimit -n) and run again", n, n+fdReserve, limit)
			b.progressf("bulk %d: skipped: %s", n, br.Skipped)
			res.Bulk = append(res.Bulk, br)
			continue
		}
		if err := b.bulkOne(ctx, &br); err != nil {
			return err
		}
		res.Bulk = append(res.Bulk, br)
	}
	return nil
}

// bulkMessage is what connection i sends in round r; the echo must match.
func bulkMessage(i, r int) []byte {
	m := make([]byte, 16)
	binary.BigEndian.PutUint64(m, uint64(i))
	binary.BigEndian.PutUint64(m[8:], uint64(r)^0x5eed)
	return m
}

// echoOnce sends conn i's message for round r and checks it comes back.
func echoOnce(c net.Conn, i, r int) error {
	msg := bulkMessage(i, r)
	got := make([]byte, len(msg))
	c.SetDeadline(time.Now().Add(stallLimit))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("connection %d: the echo differs from what was sent", i)
	}
	return nil
}

// parallel runs fn(i) for i in [0, n) on a few workers and returns how
// many succeeded and the first error.
func parallel(ctx context.Context, n int, fn func(i int) error) (ok int, first error) {
	var next, good atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < min(bulkWorkers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					continue
				}
				good.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(good.Load()), first
}

func (b *bench) bulkOne(ctx context.Context, br *BulkResult) error {
	n := br.Conns
	b.progressf("bulk %d: opening %d connections", n, n)
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	start := time.Now()
	opened, err := parallel(ctx, n, func(i int) error {
		c, err := b.dial(ctx)
		if err != nil {
			return fmt.Errorf("connection %d: connect: %w", i, err)
		}
		conns[i] = c
		if err := echoOnce(c, i, 0); err != nil {
			return fmt.Errorf("connection %d before the hand-off: %w", i, err)
		}
		return nil
	})
	br.OpenMS = time.Since(start).Milliseconds()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if opened != n {
		br.Error = fmt.Sprintf("only %d of %d connections opened and echoed (%v)", opened, n, err)
		b.progressf("bulk %d: %s", n, br.Error)
		return b.closeBulk(ctx, conns)
	}
	b.progressf("bulk %d: opened in %d ms; handing off twice", n, br.OpenMS)
	for r := 0; r < 2; r++ {
		h, err := b.handOff(ctx, start)
		if err != nil {
			return err
		}
		br.Handoffs = append(br.Handoffs, h)
		if h.OK {
			b.progressf("bulk %d: %s→%s moved %d connections, freeze→resume %s", n, h.From, h.To, h.Connections, usAsMS(h.TotalUS))
		} else {
			b.progressf("bulk %d: %s→%s failed: %s", n, h.From, h.To, h.Error)
		}
		wait.Sleep(ctx, 50*time.Millisecond)
	}
	alive, err := parallel(ctx, n, func(i int) error { return echoOnce(conns[i], i, 1) })
	if ctx.Err() != nil {
		return ctx.Err()
	}
	br.Alive = alive
	if err != nil {
		br.Error = fmt.Sprintf("after the hand-offs: %v", err)
	}
	b.progressf("bulk %d: %d of %d connections still echo", n, alive, n)
	return b.closeBulk(ctx, conns)
}

func (b *bench) closeBulk(ctx context.Context, conns []net.Conn) error {
	for i, c := range conns {
		if c != nil {
			c.Close()
			conns[i] = nil
		}
	}
	return b.waitIdle(ctx)
}
