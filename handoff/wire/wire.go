package wire

import (
	"bufio"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"time"
)

// Version is the protocol version carried by every handshake message and
// frame. A peer speaking another version is refused with ErrVersion.
const Version = 2

// KeySize is the size of the lab's shared key in bytes.
const KeySize = 32

// DefaultMaxFrame is the payload bound used when Config.MaxFrame is 0.
const DefaultMaxFrame = 64 << 20

// DefaultHandshakeTimeout bounds the handshake when Config.HandshakeTimeout
// is 0.
const DefaultHandshakeTimeout = 5 * time.Second

// Sentinel errors. Errors returned by this package wrap them with context,
// so test with errors.Is.
var (
	// ErrAuth: the peer did not prove the shared key, or a frame's tag is
	// wrong (tampered, forged, or from another session or direction).
	ErrAuth = errors.New("authentication failed")
	// ErrReplay: an authentic frame arrived out of sequence (replayed,
	// reordered, or one before it was dropped).
	ErrReplay = errors.New("replayed, reordered or missing frame")
	// ErrMalformed: bytes that are not a message of this protocol, or a
	// payload the Decoder cannot read.
	ErrMalformed = errors.New("malformed message")
	// ErrTooLarge: a frame or field is longer than its bound.
	ErrTooLarge = errors.New("too large")
	// ErrVersion: the peer speaks another protocol version.
	ErrVersion = errors.New("unsupported protocol version")
)

// Config tunes a channel. A nil *Config applies the defaults. Both ends
// should use the same MaxFrame: it bounds what Send sends and what Recv
// accepts.
type Config struct {
	MaxFrame         int           // payload bound in bytes; 0 means DefaultMaxFrame (64 MiB)
	HandshakeTimeout time.Duration // 0 means 5 s
}

func (cfg *Config) resolve() (maxFrame int, timeout time.Duration, err error) {
	maxFrame, timeout = DefaultMaxFrame, DefaultHandshakeTimeout
	if cfg == nil {
		return maxFrame, timeout, nil
	}
	if cfg.MaxFrame < 0 || uint64(cfg.MaxFrame) > math.MaxUint32 {
		return 0, 0, fmt.Errorf("wire: Config.MaxFrame %d out of range [0, %d]", cfg.MaxFrame, uint64(math.MaxUint32))
	}
	if cfg.MaxFrame > 0 {
		maxFrame = cfg.MaxFrame
	}
	if cfg.HandshakeTimeout < 0 {
		return 0, 0, fmt.Errorf("wire: Config.HandshakeTimeout %v is negative", cfg.HandshakeTimeout)
	}
	if cfg.HandshakeTimeout > 0 {
		timeout = cfg.HandshakeTimeout
	}
	return maxFrame, timeout, nil
}

// Frame layout; see doc.go.
const (
	frameMagic  = "SSFR"
	headerLen   = 19
	tagLen      = 16 // AES-GCM
	offVersion  = 4
	offType     = 5
	offFlags    = 6
	offSeq      = 7
	offLength   = 15
	readBufSize = 32 << 10
	nonceSize   = 12      // GCM's standard nonce
	keptBuf     = 1 << 20 // a send buffer larger than this is not kept
)

// Conn is an authenticated message channel made by Client or Server.
//
// Send may be called from several goroutines (frames are never interleaved),
// and so may Recv; one Send and one Recv may run at the same time. Any error
// ends the Conn (see "Failing closed" in the package doc).
type Conn struct {
	nc       net.Conn
	r        *bufio.Reader // also holds any bytes read ahead during the handshake
	maxFrame int

	sendMu    sync.Mutex
	sendAEAD  cipher.AEAD
	sendSeq   uint64
	sendHdr   [headerLen]byte
	sendNonce [nonceSize]byte
	sendBuf   []byte // sealed payload and tag, reused

	recvMu    sync.Mutex
	recvAEAD  cipher.AEAD
	recvSeq   uint64
	recvHdr   [headerLen]byte
	recvNonce [nonceSize]byte

	errMu  sync.Mutex
	err    error // first error; once set the Conn is dead
	closed bool  // nc has been closed
}

// fail records err as the Conn's first error and closes the connection, so
// the peer and any concurrent Send or Recv stop too. It returns err.
func (c *Conn) fail(err error) error {
	c.errMu.Lock()
	if c.err == nil {
		c.err = err
	}
	closeNow := !c.closed
	c.closed = true
	c.errMu.Unlock()
	if closeNow {
		c.nc.Close()
	}
	return err
}

// dead returns the error that ended the Conn, or nil.
func (c *Conn) dead() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Send sends one message of type typ. The payload must be at most the
// Conn's MaxFrame bytes (else ErrTooLarge, and the Conn is ended).
func (c *Conn) Send(typ uint8, payload []byte) error { return c.send(typ, payload, false) }

// SendOwned is Send for a payload the caller gives up: it is sealed in
// place, and the caller must not use it afterwards. With TagLen bytes of
// spare capacity a frame of megabytes is sent without a copy (and without
// a fresh buffer, whose first touch costs more than the copy).
func (c *Conn) SendOwned(typ uint8, payload []byte) error { return c.send(typ, payload, true) }

// TagLen is the bytes sealing adds to a payload.
const TagLen = tagLen

func (c *Conn) send(typ uint8, payload []byte, inPlace bool) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := c.dead(); err != nil {
		return fmt.Errorf("wire: send to %v: channel failed earlier: %w", c.nc.RemoteAddr(), err)
	}
	if len(payload) > c.maxFrame {
		return c.fail(fmt.Errorf("wire: send to %v: payload of %d bytes exceeds MaxFrame %d: %w",
			c.nc.RemoteAddr(), len(payload), c.maxFrame, ErrTooLarge))
	}
	if c.sendSeq == math.MaxUint64 {
		// Never reached in practice; wrapping would let old frames verify again.
		return c.fail(fmt.Errorf("wire: send to %v: sequence numbers exhausted: %w", c.nc.RemoteAddr(), ErrReplay))
	}
	h := c.sendHdr[:]
	putHeader(h, typ, c.sendSeq, len(payload))
	dst := c.sendBuf[:0]
	if inPlace {
		dst = payload[:0]
	}
	sealed := c.sendAEAD.Seal(dst, frameNonce(c.sendNonce[:], c.sendSeq), payload, h)
	if !inPlace && cap(sealed) <= keptBuf {
		c.sendBuf = sealed // one big frame does not pin its buffer
	}

	// On a TCP connection this is one writev.
	bufs := net.Buffers{h, sealed}
	if _, err := bufs.WriteTo(c.nc); err != nil {
		return c.fail(fmt.Errorf("wire: send to %v: frame %d: %w", c.nc.RemoteAddr(), c.sendSeq, err))
	}
	c.sendSeq++
	return nil
}

// frameNonce is a frame's GCM nonce: four zero bytes and its sequence
// number. Each direction has its own key and never repeats a number.
func frameNonce(n []byte, seq uint64) []byte {
	binary.BigEndian.PutUint64(n[4:], seq)
	return n
}

func putHeader(h []byte, typ uint8, seq uint64, n int) {
	copy(h, frameMagic)
	h[offVersion] = Version
	h[offType] = typ
	h[offFlags] = 0
	binary.BigEndian.PutUint64(h[offSeq:], seq)
	binary.BigEndian.PutUint32(h[offLength:], uint32(n))
}

// Recv waits for the next message. It returns a message only if its tag
// verifies under the session key and its sequence number is the next one.
// At the peer's clean close between frames the error wraps io.EOF.
func (c *Conn) Recv() (typ uint8, payload []byte, err error) {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	if err := c.dead(); err != nil {
		return 0, nil, fmt.Errorf("wire: recv from %v: channel failed earlier: %w", c.nc.RemoteAddr(), err)
	}
	typ, payload, err = c.recv()
	if err != nil {
		return 0, nil, c.fail(fmt.Errorf("wire: recv from %v: %w", c.nc.RemoteAddr(), err))
	}
	return typ, payload, nil
}

func (c *Conn) recv() (uint8, []byte, error) {
	h := c.recvHdr[:]
	if _, err := io.ReadFull(c.r, h); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, nil, fmt.Errorf("peer closed the channel: %w", err)
		}
		return 0, nil, fmt.Errorf("reading frame header: %w", err)
	}
	// Check everything that bounds the read before reading or allocating.
	if string(h[:offVersion]) != frameMagic {
		return 0, nil, fmt.Errorf("bad frame magic %q: %w", h[:offVersion], ErrMalformed)
	}
	if v := h[offVersion]; v != Version {
		return 0, nil, fmt.Errorf("frame version %d, want %d: %w", v, Version, ErrVersion)
	}
	if f := h[offFlags]; f != 0 {
		return 0, nil, fmt.Errorf("frame flags %#x, want 0: %w", f, ErrMalformed)
	}
	n := binary.BigEndian.Uint32(h[offLength:])
	if uint64(n) > uint64(c.maxFrame) {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds MaxFrame %d: %w", n, c.maxFrame, ErrTooLarge)
	}
	sealed := make([]byte, int(n)+tagLen)
	if _, err := io.ReadFull(c.r, sealed[:n]); err != nil {
		return 0, nil, fmt.Errorf("reading %d-byte payload: %w", n, unexpectedEOF(err))
	}
	if _, err := io.ReadFull(c.r, sealed[n:]); err != nil {
		return 0, nil, fmt.Errorf("reading frame tag: %w", unexpectedEOF(err))
	}
	seq := binary.BigEndian.Uint64(h[offSeq:])
	payload, err := c.recvAEAD.Open(sealed[:0], frameNonce(c.recvNonce[:], seq), sealed, h)
	if err != nil {
		return 0, nil, fmt.Errorf("frame tag does not verify: %w", ErrAuth)
	}
	// Authentic from here on.
	if seq != c.recvSeq {
		return 0, nil, fmt.Errorf("frame sequence %d, want %d: %w", seq, c.recvSeq, ErrReplay)
	}
	c.recvSeq++
	return h[offType], payload, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// SetDeadline sets the read and write deadline of the underlying
// connection. A Send or Recv that hits it fails and ends the Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	if err := c.nc.SetDeadline(t); err != nil {
		return fmt.Errorf("wire: set deadline on channel with %v: %w", c.nc.RemoteAddr(), err)
	}
	return nil
}

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Close closes the channel and the underlying connection. Later Send and
// Recv calls return an error wrapping net.ErrClosed.
func (c *Conn) Close() error {
	c.errMu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("channel with %v closed: %w", c.nc.RemoteAddr(), net.ErrClosed)
	}
	closeNow := !c.closed
	c.closed = true
	c.errMu.Unlock()
	if !closeNow {
		return nil // already closed, by an earlier Close or a failure
	}
	return c.nc.Close()
}
