package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Modes.
const (
	Stream = "stream"
	Ping   = "ping"
)

// Config says what to run. Zero fields take the defaults noted.
type Config struct {
	Addr     string        // host:port of the echo service
	Mode     string        // Stream or Ping; default Ping
	Conns    int           // connections; default 1
	Rate     int           // stream: bytes per second per connection; 0 is full speed
	Interval time.Duration // ping: pause between pings; default 10 ms, negative: none
	Size     int           // ping: message size, at least 16; default 64
	Duration time.Duration // 0 runs until ctx is done
	// Stall is how long the client waits for owed data before it counts an
	// error and gives up the connection; default 10 s.
	Stall time.Duration
	// Every, if set, is called about once a second with the totals so far.
	Every func(Stats)
	// Dial, if set, opens connections (tests use it to dial from a namespace).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Stats are the totals of a run.
type Stats struct {
	Mode        string `json:"mode"`
	Conns       int    `json:"conns"`
	Bytes       uint64 `json:"bytes"`  // verified bytes received back
	Pings       uint64 `json:"pings"`  // completed round trips
	Errors      uint64 `json:"errors"` // wrong bytes, resets, ends, stalls
	LastError   string `json:"last_error,omitempty"`
	LastRTTus   int64  `json:"last_rtt_us"`
	MaxRTTus    int64  `json:"max_rtt_us"`
	WorstGapUS  int64  `json:"worst_gap_us"`
	Retransmits uint32 `json:"retransmits"` // the client's TCP retransmissions (TCP_INFO)
	RTOs        uint32 `json:"rtos"`        // retransmission timeouts that fired (TCP_INFO, Linux >= 6.7)
	ElapsedMS   int64  `json:"elapsed_ms"`
}

// Run runs the client until cfg.Duration passes or ctx is done, then
// returns the totals. The error is non-nil when any connection failed.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.Mode == "" {
		cfg.Mode = Ping
	}
	if cfg.Mode != Ping && cfg.Mode != Stream {
		return Stats{}, fmt.Errorf("client: unknown mode %q (want stream or ping)", cfg.Mode)
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 1
	}
	if cfg.Interval == 0 {
		cfg.Interval = 10 * time.Millisecond
	}
	if cfg.Size < 16 {
		cfg.Size = 64
	}
	if cfg.Stall == 0 {
		cfg.Stall = 10 * time.Second
	}
	if cfg.Dial == nil {
		cfg.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		}
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	r := &run{cfg: cfg, start: time.Now()}
	conns := make([]net.Conn, 0, cfg.Conns)
	for i := 0; i < cfg.Conns; i++ {
		c, err := cfg.Dial(ctx, cfg.Addr)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return r.stats(), fmt.Errorf("client: connect to %s: %w", cfg.Addr, err)
		}
		conns = append(conns, c)
	}
	r.setConns(conns)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if cfg.Mode == Stream {
				err = r.stream(ctx, c, uint64(i+1))
			} else {
				err = r.ping(ctx, c)
			}
			r.connRetrans[i].finish()
			c.Close()
			if err != nil {
				r.fail(err)
			}
		}()
	}
	done := make(chan struct{})
	if cfg.Every != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					cfg.Every(r.stats())
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	st := r.stats()
	if st.Errors > 0 {
		return st, fmt.Errorf("client: %d errors, last: %s", st.Errors, st.LastError)
	}
	return st, nil
}

type run struct {
	cfg   Config
	start time.Time

	bytes, pings, errs atomic.Uint64
	lastRTT, maxRTT    atomic.Int64
	worstGap           atomic.Int64
	// connRetrans are each connection's TCP retransmission counters, read
	// from TCP_INFO at every stats() while it is open (so a stalled client
	// shows them growing) and once more before it closes.
	connRetrans []*retransCount

	mu      sync.Mutex
	lastErr string
}

func (r *run) fail(err error) {
	r.errs.Add(1)
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func (r *run) setConns(conns []net.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connRetrans = make([]*retransCount, len(conns))
	for i, c := range conns {
		r.connRetrans[i] = &retransCount{c: c}
	}
}

// retransCount is one connection's retransmissions so far.
type retransCount struct {
	c             net.Conn
	closed        atomic.Bool
	retrans, rtos atomic.Uint32
}

func (rc *retransCount) read() (uint32, uint32) {
	if !rc.closed.Load() {
		retrans, rtos, _ := Retransmits(rc.c)
		storeMax32(&rc.retrans, retrans)
		storeMax32(&rc.rtos, rtos)
	}
	return rc.retrans.Load(), rc.rtos.Load()
}

// finish takes the last reading; call it before closing the connection.
func (rc *retransCount) finish() {
	rc.read()
	rc.closed.Store(true)
}

func storeMax32(a *atomic.Uint32, v uint32) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func (r *run) stats() Stats {
	r.mu.Lock()
	lastErr := r.lastErr
	counts := r.connRetrans
	r.mu.Unlock()
	var retrans, rtos uint32
	for _, rc := range counts {
		a, b := rc.read()
		retrans += a
		rtos += b
	}
	return Stats{
		Mode: r.cfg.Mode, Conns: r.cfg.Conns, Bytes: r.bytes.Load(), Pings: r.pings.Load(),
		Errors: r.errs.Load(), LastError: lastErr, LastRTTus: r.lastRTT.Load(), MaxRTTus: r.maxRTT.Load(),
		WorstGapUS: r.worstGap.Load(), Retransmits: retrans, RTOs: rtos, ElapsedMS: time.Since(r.start).Milliseconds(),
	}
}

// ended reports whether err only means the run is over.
func ended(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isTimeout(err))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// armDeadline sets a deadline d from now, unless ctx is over: then one in
// the past, so a stop that raced with this call is never overwritten.
func armDeadline(ctx context.Context, set func(time.Time) error, d time.Duration) {
	set(time.Now().Add(d))
	if ctx.Err() != nil {
		set(time.Unix(1, 0))
	}
}

// ping sends numbered messages and checks each comes back whole.
func (r *run) ping(ctx context.Context, c net.Conn) error {
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msg := make([]byte, r.cfg.Size)
	got := make([]byte, r.cfg.Size)
	for seq := uint64(1); ctx.Err() == nil; seq++ {
		binary.BigEndian.PutUint64(msg, seq)
		fill(msg[8:], seq, 0)
		armDeadline(ctx, c.SetDeadline, r.cfg.Stall)
		sent := time.Now()
		if _, err := c.Write(msg); err != nil {
			if ended(ctx, err) {
				return nil
			}
			return fmt.Errorf("ping %d: write: %w", seq, err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			if ended(ctx, err) {
				return nil
			}
			return fmt.Errorf("ping %d: read: %w", seq, err)
		}
		rtt := time.Since(sent).Microseconds()
		if string(got) != string(msg) {
			return fmt.Errorf("ping %d: the echo differs from what was sent", seq)
		}
		r.pings.Add(1)
		r.bytes.Add(uint64(len(got)))
		r.lastRTT.Store(rtt)
		storeMax(&r.maxRTT, rtt)
		storeMax(&r.worstGap, rtt)
		if r.cfg.Interval > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(r.cfg.Interval):
			}
		}
	}
	return nil
}

// stream writes the pattern for seed and checks every byte that comes back.
func (r *run) stream(ctx context.Context, c net.Conn, seed uint64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var written atomic.Uint64
	werr := make(chan error, 1)
	go func() {
		stop := context.AfterFunc(wctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
		const chunk = 32 << 10
		buf := make([]byte, chunk)
		var off uint64
		start := time.Now()
		for wctx.Err() == nil {
			n := chunk
			if r.cfg.Rate > 0 {
				// Keep to the rate: write what is due, in pieces of at most
				// chunk, and at least 5 ms worth, so a slow rate is a few
				// hundred writes a second, not one tiny segment per byte.
				due := uint64(time.Since(start).Seconds() * float64(r.cfg.Rate))
				if due < off+min(uint64(chunk), uint64(r.cfg.Rate)/200+1) {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				n = int(min(uint64(chunk), due-off))
			}
			fill(buf[:n], seed, off)
			armDeadline(wctx, c.SetWriteDeadline, r.cfg.Stall)
			m, err := c.Write(buf[:n])
			off += uint64(m)
			written.Store(off)
			if err != nil {
				if ended(wctx, err) {
					err = nil
				}
				werr <- err
				return
			}
		}
		werr <- nil
	}()

	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 64<<10)
	want := make([]byte, 64<<10)
	var off uint64
	last := time.Now()
	for {
		armDeadline(ctx, c.SetReadDeadline, r.cfg.Stall)
		n, err := c.Read(buf)
		if n > 0 {
			now := time.Now()
			storeMax(&r.worstGap, now.Sub(last).Microseconds())
			last = now
			fill(want[:n], seed, off)
			if string(buf[:n]) != string(want[:n]) {
				cancel()
				return fmt.Errorf("stream: wrong byte within offset %d..%d", off, off+uint64(n))
			}
			off += uint64(n)
			r.bytes.Add(uint64(n))
		}
		if err != nil {
			if ended(ctx, err) {
				cancel()
				return <-werr
			}
			cancel()
			return fmt.Errorf("stream: read at offset %d of %d written: %w", off, written.Load(), err)
		}
		// Nothing owed: the wait for the next byte is not a gap.
		if off >= written.Load() {
			last = time.Now()
		}
	}
}

// fill writes the pattern of stream seed from offset off into b: every
// 8-byte block is a hash of its index, so a byte lost, doubled or moved
// shows up as a mismatch.
func fill(b []byte, seed, off uint64) {
	for i := 0; i < len(b); {
		pos := off + uint64(i)
		x := splitmix(seed<<40 ^ pos>>3)
		for k := pos & 7; k < 8 && i < len(b); k++ {
			b[i] = byte(x >> (8 * k))
			i++
		}
	}
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
