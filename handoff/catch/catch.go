package catch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Config tunes a Catcher. A nil *Config applies the defaults.
type Config struct {
	// Ports are the destination TCP ports to catch; empty catches every
	// port of the VIP.
	Ports []uint16
	// MaxBytes bounds the Ethernet bytes of the frames kept until Forward;
	// frames beyond it are dropped and counted. 0 means 64 MiB.
	MaxBytes int
	// Grace is how long, after Forward, stragglers are forwarded as they
	// arrive, while the client still sends to our MAC. 0 means 200 ms.
	Grace time.Duration
}

// Stats counts what a Catcher did.
type Stats struct {
	// Caught counts the frames that passed the filter: kept, forwarded at
	// once as stragglers, or dropped.
	Caught int
	// Forwarded counts the frames re-sent to the target.
	Forwarded int
	// Dropped counts the frames lost: beyond MaxBytes, too large or
	// unreadable, overflowing the socket's receive queue before they were
	// read (counted by the kernel, not in Caught), or refused on re-send.
	// Frames that Stop discards are not counted here.
	Dropped int
	// Bytes counts the Ethernet bytes of the frames kept for Forward (the
	// quantity MaxBytes bounds), each frame once.
	Bytes int
	// Early counts the frames kept before Mark that DropEarly let go: the
	// source had processed them, and the target's state already says so.
	Early int
	// Others counts the frames Only refused: frames of connections that
	// did not move, which the target would answer with a reset.
	Others int
}

// Stage is when a frame arrived, for Only: before the freeze (Mark),
// between the freeze and the release of the address (Released), or after.
type Stage uint8

const (
	BeforeFreeze Stage = iota
	BeforeRelease
	AfterRelease
)

const (
	defaultMaxBytes = 64 << 20
	defaultGrace    = 200 * time.Millisecond
	// maxPorts keeps the filter program well under the kernel's limit of
	// 4096 instructions (two per port).
	maxPorts = 1000
	// sendBound bounds how long re-sending waits for room in the socket's
	// send buffer, on top of the grace period.
	sendBound = time.Second

	// vnetHdrLen is the size of struct virtio_net_hdr, which PACKET_VNET_HDR
	// puts in front of every frame read and expects in front of every frame
	// written.
	vnetHdrLen = 10
	ethHdrLen  = 14
	// readBufLen holds the largest GSO frame Linux builds (512 KB with BIG
	// TCP); a larger one is detected and dropped.
	readBufLen = vnetHdrLen + ethHdrLen + 512<<10
)

// errUnreadable is returned by frameConn.readFrame for one frame the kernel
// could not hand over (e.g. a GSO type the virtio header cannot describe);
// reading goes on.
var errUnreadable = errors.New("unreadable frame")

// frameConn is the packet socket as the Catcher uses it.
type frameConn interface {
	// readFrame reads the next frame, with its virtio header, into b and
	// returns its full length, which exceeds len(b) if it was truncated.
	readFrame(b []byte) (int, error)
	// writeFrame sends a frame that starts with its virtio header.
	writeFrame(b []byte) error
	setReadDeadline(t time.Time) error
	setWriteDeadline(t time.Time) error
	// kernelDrops returns the frames the kernel dropped for want of room
	// in the receive queue since the last call.
	kernelDrops() int
	close() error
}

type phase int

const (
	catching   phase = iota // keeping frames
	draining                // Forward is re-sending kept frames; still keeping
	forwarding              // grace period: stragglers are sent at once
	stopped                 // nothing more is kept or sent
)

// A Catcher keeps the frames sent to the VIP on one interface until Forward
// or Stop; one of the two must be called, or the socket stays open. Its
// methods may be called from any goroutine.
type Catcher struct {
	ifname   string
	vip      netip.Addr
	mac      net.HardwareAddr
	conn     frameConn
	maxBytes int
	grace    time.Duration

	mu        sync.Mutex
	phase     phase
	to        net.HardwareAddr
	kept      [][]byte
	keptBytes int
	marked    bool
	early     int // kept[:early] were kept before Mark
	released  int // kept[:released] were kept before Released; -1 before it
	owns      func(ip []byte, at Stage) bool
	stats     Stats
	readErr   error

	endOnce sync.Once
	ended   chan struct{} // closed by Forward or Stop
	done    chan struct{} // closed once the socket is closed
}

// options are a Config checked and with its defaults applied.
type options struct {
	ports    []uint16
	maxBytes int
	grace    time.Duration
}

func resolve(vip netip.Addr, cfg *Config) (options, error) {
	if !vip.Unmap().Is4() {
		return options{}, fmt.Errorf("%v is not an IPv4 address", vip)
	}
	o := options{maxBytes: defaultMaxBytes, grace: defaultGrace}
	if cfg == nil {
		return o, nil
	}
	if cfg.MaxBytes < 0 {
		return o, fmt.Errorf("negative MaxBytes %d", cfg.MaxBytes)
	}
	if cfg.Grace < 0 {
		return o, fmt.Errorf("negative Grace %v", cfg.Grace)
	}
	if cfg.MaxBytes > 0 {
		o.maxBytes = cfg.MaxBytes
	}
	if cfg.Grace > 0 {
		o.grace = cfg.Grace
	}
	seen := make(map[uint16]bool, len(cfg.Ports))
	for _, p := range cfg.Ports {
		if !seen[p] {
			seen[p] = true
			o.ports = append(o.ports, p)
		}
	}
	if len(o.ports) > maxPorts {
		return o, fmt.Errorf("%d ports, more than %d (leave Ports empty to catch all)", len(o.ports), maxPorts)
	}
	return o, nil
}

// start makes a Catcher on an open, filtered socket and starts reading.
func start(conn frameConn, ifname string, vip netip.Addr, mac net.HardwareAddr, o options) *Catcher {
	c := &Catcher{
		ifname:   ifname,
		vip:      vip,
		mac:      mac,
		conn:     conn,
		maxBytes: o.maxBytes,
		grace:    o.grace,
		released: -1,
		ended:    make(chan struct{}),
		done:     make(chan struct{}),
	}
	go c.run()
	return c
}

// Forward re-sends every kept frame, in order, to the MAC `to`, then
// forwards stragglers for the grace period in the background and closes.
// It returns once the kept frames are sent (not waiting for the grace
// period or the close). It may be called once, and not after Stop. A frame
// that cannot be sent is counted in Dropped, the rest are still sent, and
// the error says how many failed.
func (c *Catcher) Forward(to net.HardwareAddr) (Stats, error) {
	if len(to) != 6 {
		return c.Stats(), fmt.Errorf("catch: forward %v on %s: %q is not an Ethernet MAC", c.vip, c.ifname, to)
	}
	to = append(net.HardwareAddr(nil), to...)
	c.mu.Lock()
	if c.phase != catching {
		c.mu.Unlock()
		return c.Stats(), fmt.Errorf("catch: forward %v on %s to %v: already forwarded or stopped", c.vip, c.ifname, to)
	}
	c.phase = draining
	c.to = to
	c.mu.Unlock()

	_ = c.conn.setWriteDeadline(time.Now().Add(sendBound + c.grace))
	var failed, tried int
	var firstErr error
	// Frames that arrive while a batch is being sent are kept behind it;
	// only when nothing is left do stragglers go out at once, so the
	// target receives everything in arrival order.
	for {
		c.mu.Lock()
		if c.phase == stopped {
			c.mu.Unlock()
			break
		}
		batch := c.kept
		early, released, owns := c.early, c.released, c.owns
		c.kept, c.keptBytes = nil, 0
		c.early, c.released = 0, 0 // what arrives from now on comes after the release
		if len(batch) == 0 {
			c.phase = forwarding
			// Under the lock, so that a concurrent Stop's deadline wins.
			_ = c.conn.setReadDeadline(time.Now().Add(c.grace))
			c.mu.Unlock()
			break
		}
		c.mu.Unlock()
		for i, f := range batch {
			if !c.owned(owns, f, stageOf(i, early, released)) {
				continue
			}
			tried++
			if err := c.send(f, to); err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		}
	}
	c.end()

	c.mu.Lock()
	c.stats.Dropped += c.conn.kernelDrops()
	st, readErr := c.stats, c.readErr
	c.mu.Unlock()
	var errs []error
	if firstErr != nil {
		errs = append(errs, fmt.Errorf("catch: forward %v on %s to %v: %d of %d frames not sent: %w", c.vip, c.ifname, to, failed, tried, firstErr))
	}
	if readErr != nil {
		errs = append(errs, fmt.Errorf("catch: %v on %s: catching stopped early, later frames lost: %w", c.vip, c.ifname, readErr))
	}
	return st, errors.Join(errs...)
}

// stageOf is when the i-th kept frame arrived, given how many were kept
// before Mark (early) and before Released (released, -1 if not called).
func stageOf(i, early, released int) Stage {
	switch {
	case i < early:
		return BeforeFreeze
	case released < 0 || i < released:
		return BeforeRelease
	}
	return AfterRelease
}

// owned reports whether owns lets the frame go to the target, counting
// the refused in Stats.Others.
func (c *Catcher) owned(owns func([]byte, Stage) bool, frame []byte, at Stage) bool {
	if owns == nil || owns(frame[vnetHdrLen+ethHdrLen:], at) {
		return true
	}
	c.mu.Lock()
	c.stats.Others++
	c.mu.Unlock()
	return false
}

// Released notes that the source no longer holds the address: its kernel
// answered nothing that arrived from now on (a SYN among them gets no
// SYN-ACK there). Only the first call counts.
func (c *Catcher) Released() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.released < 0 {
		c.released = len(c.kept)
	}
}

// Only sets which frames Forward delivers, kept and stragglers alike: owns
// gets each frame's IPv4 packet and when it arrived, and a frame it
// refuses is dropped and counted in Stats.Others. The source delivers only
// what the target can own: frames of the connections that moved, and SYNs
// its own kernel never answered; a frame of a connection that stayed or
// was closing here would draw a reset from the target. Set it before
// Forward; nil delivers everything.
func (c *Catcher) Only(owns func(ip []byte, at Stage) bool) {
	c.mu.Lock()
	c.owns = owns
	c.mu.Unlock()
}

// Mark notes the freeze: frames kept until now reached the source's
// sockets while they were live, those kept from now on did not. Only the
// first call counts.
func (c *Catcher) Mark() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.marked {
		c.marked, c.early = true, len(c.kept)
	}
}

// DropEarly lets go of the frames kept before Mark for which needed,
// given the frame's IPv4 packet, returns false, before Forward re-sends
// them. The source keeps only what its dumped state does not already
// hold: data beyond what it had received in order (out-of-order data, which
// repair mode cannot dump, and which the client will not resend while it
// counts it SACKed). Without Mark it does nothing.
func (c *Catcher) DropEarly(needed func(ip []byte) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.marked || c.phase != catching {
		return
	}
	kept := c.kept[:0]
	dropped := 0
	for i, f := range c.kept {
		if i < c.early && !needed(f[vnetHdrLen+ethHdrLen:]) {
			c.stats.Early++
			c.keptBytes -= len(f) - vnetHdrLen
			dropped++
			continue
		}
		kept = append(kept, f)
	}
	clear(c.kept[len(kept):])
	c.kept, c.early = kept, c.early-dropped
	if c.released >= 0 {
		c.released -= dropped // every frame dropped came before it
	}
}

// Stop ends catching and drops what was kept (rollback, or nothing to
// deliver); the close happens in the background. After Forward it ends the
// grace period early. Stop may be called more than once.
func (c *Catcher) Stop() {
	c.mu.Lock()
	c.phase = stopped
	c.kept, c.keptBytes = nil, 0
	// A deadline in the past wakes the reader, which then closes the socket.
	_ = c.conn.setReadDeadline(time.Unix(1, 0))
	c.mu.Unlock()
	c.end()
}

// Done is closed when the catcher has fully finished (socket closed); tests
// and clean shutdowns wait on it.
func (c *Catcher) Done() <-chan struct{} { return c.done }

// Stats returns what the Catcher has done so far.
func (c *Catcher) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

func (c *Catcher) end() { c.endOnce.Do(func() { close(c.ended) }) }

// run reads frames until the deadline that Forward or Stop sets, then closes
// the socket, off the caller's path.
func (c *Catcher) run() {
	defer close(c.done)
	buf := make([]byte, readBufLen)
	for {
		n, err := c.conn.readFrame(buf)
		if errors.Is(err, errUnreadable) {
			c.mu.Lock()
			c.stats.Caught++
			c.stats.Dropped++
			c.mu.Unlock()
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			// The socket is gone (e.g. the interface went down): keep what
			// was caught for Forward, which reports the error.
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			break
		}
		c.handle(buf, n)
	}
	<-c.ended
	c.mu.Lock()
	c.stats.Dropped += c.conn.kernelDrops()
	c.kept, c.keptBytes = nil, 0
	c.mu.Unlock()
	// Nobody waits for the result; the socket is unusable either way.
	_ = c.conn.close()
}

// handle keeps, forwards or drops one frame read into buf.
func (c *Catcher) handle(buf []byte, n int) {
	c.mu.Lock()
	if c.phase == stopped {
		c.mu.Unlock()
		return
	}
	c.stats.Caught++
	if n > len(buf) || n < vnetHdrLen+ethHdrLen {
		c.stats.Dropped++
		c.mu.Unlock()
		return
	}
	if c.phase == forwarding {
		to, owns := c.to, c.owns
		c.mu.Unlock()
		// A failed straggler is counted in Dropped by send; the client
		// retransmits it, as it would have without us.
		if c.owned(owns, buf[:n], AfterRelease) {
			_ = c.send(buf[:n], to)
		}
		return
	}
	defer c.mu.Unlock()
	size := n - vnetHdrLen
	if c.keptBytes+size > c.maxBytes {
		c.stats.Dropped++
		return
	}
	c.kept = append(c.kept, append([]byte(nil), buf[:n]...))
	c.keptBytes += size
	c.stats.Bytes += size
}

// send rewrites the frame's Ethernet addresses (destination the target,
// source ours, so no switch learns the client's MAC on our port) and
// re-sends it with its virtio header unchanged.
func (c *Catcher) send(frame []byte, to net.HardwareAddr) error {
	copy(frame[vnetHdrLen:vnetHdrLen+6], to)
	copy(frame[vnetHdrLen+6:vnetHdrLen+12], c.mac)
	err := c.conn.writeFrame(frame)
	c.mu.Lock()
	if err != nil {
		c.stats.Dropped++
	} else {
		c.stats.Forwarded++
	}
	c.mu.Unlock()
	return err
}
