package repair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sockshift/sockshift/handoff/internal/bufpool"
)

// MaxQueue bounds each queue of a State, on encoding and decoding: far above
// what a socket holds (tcp_rmem/tcp_wmem maxima are a few MB), low enough
// that a hostile State cannot make a target allocate without bound.
const MaxQueue = 64 << 20

// Window is struct tcp_repair_window.
type Window struct{ SndWl1, SndWnd, MaxWindow, RcvWnd, RcvWup uint32 }

// State is the frozen state of one established TCP connection: plain data,
// versioned binary encoding (MarshalBinary/UnmarshalBinary).
type State struct {
	Local, Remote netip.AddrPort
	SendSeq       uint32 // sequence number of Unacked[0] (snd_una = write_seq - outq)
	RecvSeq       uint32 // sequence number of RecvQueue[0] (rcv_nxt - inq)
	RecvQueue     []byte // received, not yet read by the application
	Unacked       []byte // sent, not yet acknowledged
	Unsent        []byte // accepted from the application, never sent
	MSS           uint32

	SACK, Timestamps, WindowScaling bool
	SndWscale, RcvWscale            uint8

	// Timestamp is TCP_TIMESTAMP at dump, moved on past any stamp the
	// socket may have sent ahead of it (pacing); low bit set =
	// microsecond timestamps (kernels >= 6.7).
	Timestamp uint32
	Window    Window

	SndBuf, RcvBuf uint32 // as read with SO_SNDBUF / SO_RCVBUF
	NoDelay        bool
	KeepAlive      bool

	KeepIdle, KeepIntvl, KeepCnt uint32 // seconds, seconds, count

	// PeerClosed says the peer's FIN was already taken in (CLOSE_WAIT):
	// the state stops just before it, and the rebuilt socket, once active,
	// is shut for reading (the application reads the queued bytes, then
	// the end), as the FIN itself went to the socket dumped. A FIN the
	// catcher kept reaches it too, and closes it as it would have.
	PeerClosed bool
	// bufs are the buffers a dump read the queues into, for Release.
	bufs [2][]byte
}

// repairWindow is the window to restore, moved into what the kernel
// accepts. The kernel refuses a snd_wl1 (the sequence number of the
// segment that last updated the send window) past rcv_nxt + rcv_wnd, yet a
// socket whose receive buffer filled can be dumped that way: its window
// shrank to zero at rcv_nxt (seen in a soak: snd_wl1 2048 bytes past it,
// rcv_wnd 0). snd_wl1 only keeps an older segment from updating the send
// window; brought back to the window's edge, it can let one stale update
// through, which the next segment corrects.
func (s *State) repairWindow() Window {
	w := s.Window
	if edge := s.RecvSeq + uint32(len(s.RecvQueue)) + w.RcvWnd; int32(w.SndWl1-edge) > 0 {
		w.SndWl1 = edge
	}
	return w
}

// Release hands the buffers a dump read the queues into back for reuse by
// later dumps (megabytes, on a busy connection); afterwards the State's
// queues are empty. Calling it is optional, and a State not from a dump
// has nothing to release.
func (s *State) Release() {
	for i, b := range s.bufs {
		bufpool.Put(b)
		s.bufs[i] = nil
	}
	s.RecvQueue, s.Unacked, s.Unsent = nil, nil, nil
}

// Encoding, version 1 (big endian):
//
//	magic "SSRS" | version u8 | flags u8 | snd_wscale u8 | rcv_wscale u8
//	local ipv4 [4] port u16 | remote ipv4 [4] port u16
//	send_seq recv_seq mss timestamp            (u32 each)
//	snd_wl1 snd_wnd max_window rcv_wnd rcv_wup (u32 each)
//	sndbuf rcvbuf keepidle keepintvl keepcnt   (u32 each)
//	recv queue, unacked, unsent                (u32 length, bytes each)
const (
	stateMagic   = "SSRS"
	stateVersion = 1
	headerLen    = 4 + 4 + 2*6 + 4*4 + 5*4 + 5*4
	// maxWscale is TCP_MAX_WSCALE: the kernel refuses larger shifts.
	maxWscale = 14
)

const (
	flagSACK = 1 << iota
	flagTimestamps
	flagWindowScaling
	flagNoDelay
	flagKeepAlive
	flagPeerClosed
	flagsKnown = flagSACK | flagTimestamps | flagWindowScaling | flagNoDelay | flagKeepAlive | flagPeerClosed
)

var errNotIPv4 = errors.New("address is not IPv4")

// check reports why s cannot be encoded or restored.
func (s *State) check() error {
	if !s.Local.Addr().Is4() {
		return fmt.Errorf("local %v: %w", s.Local, errNotIPv4)
	}
	if !s.Remote.Addr().Is4() {
		return fmt.Errorf("remote %v: %w", s.Remote, errNotIPv4)
	}
	if s.SndWscale > maxWscale || s.RcvWscale > maxWscale {
		return fmt.Errorf("window scale %d/%d above %d", s.SndWscale, s.RcvWscale, maxWscale)
	}
	for _, q := range []struct {
		name string
		b    []byte
	}{{"receive queue", s.RecvQueue}, {"unacked queue", s.Unacked}, {"unsent queue", s.Unsent}} {
		if len(q.b) > MaxQueue {
			return fmt.Errorf("%s of %d bytes above MaxQueue (%d)", q.name, len(q.b), MaxQueue)
		}
	}
	return nil
}

// MarshalBinary encodes s. It fails if s could not be restored: addresses
// not IPv4, a window scale above 14 or a queue above MaxQueue.
func (s *State) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, s.EncodedLen()))
}

// EncodedLen is the length of s's encoding.
func (s *State) EncodedLen() int {
	return headerLen + 3*4 + len(s.RecvQueue) + len(s.Unacked) + len(s.Unsent)
}

// AppendBinary appends s's encoding to b (encoding.BinaryAppender): a large
// state goes straight into the frame that carries it. It fails like
// MarshalBinary, and then returns b unchanged.
func (s *State) AppendBinary(b []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return b, fmt.Errorf("repair: encode state: %w", err)
	}
	b = append(b, stateMagic...)
	var flags byte
	for _, f := range []struct {
		on  bool
		bit byte
	}{{s.SACK, flagSACK}, {s.Timestamps, flagTimestamps}, {s.WindowScaling, flagWindowScaling},
		{s.NoDelay, flagNoDelay}, {s.KeepAlive, flagKeepAlive}, {s.PeerClosed, flagPeerClosed}} {
		if f.on {
			flags |= f.bit
		}
	}
	b = append(b, stateVersion, flags, s.SndWscale, s.RcvWscale)
	for _, ap := range []netip.AddrPort{s.Local, s.Remote} {
		a := ap.Addr().As4()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, ap.Port())
	}
	for _, v := range []uint32{
		s.SendSeq, s.RecvSeq, s.MSS, s.Timestamp,
		s.Window.SndWl1, s.Window.SndWnd, s.Window.MaxWindow, s.Window.RcvWnd, s.Window.RcvWup,
		s.SndBuf, s.RcvBuf, s.KeepIdle, s.KeepIntvl, s.KeepCnt,
	} {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	for _, q := range [][]byte{s.RecvQueue, s.Unacked, s.Unsent} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(q)))
		b = append(b, q...)
	}
	return b, nil
}

// UnmarshalBinary decodes b into s. Bad input (wrong magic or version,
// truncated, trailing bytes, unknown flags, a queue above MaxQueue) is an
// error, never a panic; s is left unchanged then. Queues are copied out of b,
// and empty queues decode as nil.
func (s *State) UnmarshalBinary(b []byte) error { return s.decode(b, false) }

// DecodeState decodes b like UnmarshalBinary, except that the queues are
// not copied: they alias b, which the caller must not change while the
// State is in use. Megabytes of queued bytes then reach the kernel from the
// frame they came in.
func DecodeState(b []byte) (*State, error) {
	var s State
	if err := s.decode(b, true); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *State) decode(b []byte, alias bool) error {
	d := decoder{b: b}
	if string(d.bytes(4)) != stateMagic {
		return errors.New("repair: decode state: bad magic")
	}
	if v := d.u8(); d.err == nil && v != stateVersion {
		return fmt.Errorf("repair: decode state: unsupported version %d (want %d)", v, stateVersion)
	}
	var n State
	flags := d.u8()
	n.SndWscale, n.RcvWscale = d.u8(), d.u8()
	n.Local = d.addrPort()
	n.Remote = d.addrPort()
	for _, p := range []*uint32{
		&n.SendSeq, &n.RecvSeq, &n.MSS, &n.Timestamp,
		&n.Window.SndWl1, &n.Window.SndWnd, &n.Window.MaxWindow, &n.Window.RcvWnd, &n.Window.RcvWup,
		&n.SndBuf, &n.RcvBuf, &n.KeepIdle, &n.KeepIntvl, &n.KeepCnt,
	} {
		*p = d.u32()
	}
	for _, q := range []*[]byte{&n.RecvQueue, &n.Unacked, &n.Unsent} {
		l := d.u32()
		if d.err == nil && l > MaxQueue {
			return fmt.Errorf("repair: decode state: queue of %d bytes above MaxQueue (%d)", l, MaxQueue)
		}
		switch raw := d.bytes(int(l)); {
		case len(raw) == 0:
		case alias:
			*q = raw[:len(raw):len(raw)]
		default:
			*q = append([]byte(nil), raw...)
		}
	}
	if d.err != nil {
		return fmt.Errorf("repair: decode state: %w", d.err)
	}
	if len(d.b) != 0 {
		return fmt.Errorf("repair: decode state: %d trailing bytes", len(d.b))
	}
	if flags&^flagsKnown != 0 {
		return fmt.Errorf("repair: decode state: unknown flags %#x", flags&^flagsKnown)
	}
	n.SACK = flags&flagSACK != 0
	n.Timestamps = flags&flagTimestamps != 0
	n.WindowScaling = flags&flagWindowScaling != 0
	n.NoDelay = flags&flagNoDelay != 0
	n.KeepAlive = flags&flagKeepAlive != 0
	n.PeerClosed = flags&flagPeerClosed != 0
	if err := n.check(); err != nil {
		return fmt.Errorf("repair: decode state: %w", err)
	}
	*s = n
	return nil
}

// String is one line for logs.
func (s *State) String() string {
	if s == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%v->%v snd=%d rcv=%d q=%d/%d/%d", s.Local, s.Remote, s.SendSeq, s.RecvSeq,
		len(s.RecvQueue), len(s.Unacked), len(s.Unsent))
}

// decoder reads big-endian fields; after the first short read it returns
// zeros and keeps the error.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errTruncated
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.bytes(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.bytes(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) addrPort() netip.AddrPort {
	v := d.bytes(4)
	if v == nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(v)), d.u16())
}
