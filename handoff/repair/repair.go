package repair

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// SocketState says where a socket stands after a failed operation.
type SocketState int

const (
	// Unknown: the socket's state could not be established.
	Unknown SocketState = iota
	// Normal: the socket is live and out of repair mode; it serves on.
	Normal
	// Repair: the socket is still frozen in repair mode (silent).
	Repair
	// Closed: the socket is gone; it was closed in repair mode, silently.
	Closed
)

func (s SocketState) String() string {
	switch s {
	case Normal:
		return "normal"
	case Repair:
		return "repair"
	case Closed:
		return "closed"
	default:
		return "unknown"
	}
}

// Error is the error of every operation of this package. Socket says where
// the connection stands after the failure, so a caller knows whether to
// thaw, close, or forget it.
type Error struct {
	Op     string      // "freeze", "dump", "thaw", "close", "restore", "activate", "discard"
	Conn   string      // "local->remote"
	Socket SocketState // the socket's state after the failure
	Err    error
}

func (e *Error) Error() string {
	s := "repair: " + e.Op
	if e.Conn != "" {
		s += " " + e.Conn
	}
	s += " (socket " + e.Socket.String() + ")"
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotEstablished is a socket found in a state that cannot move: not
// established (nor established with only the peer's FIN taken in).
var ErrNotEstablished = errors.New("not an established connection")

var (
	errNotFrozen = errors.New("connection is not frozen")
	errDone      = errors.New("restored socket already activated or discarded")
)

// Frozen is a live connection held in repair mode: Thaw it (rollback) or
// Close it (commit). Its methods are safe for concurrent use.
type Frozen struct {
	mu     sync.Mutex
	conn   *net.TCPConn
	rc     syscall.RawConn
	name   string
	socket SocketState // Repair until Thaw (Normal) or Close (Closed)
}

// Freeze turns TCP repair mode on for c. From then on the kernel sends
// nothing for c on its own accord and closing c is silent; the application
// must not read or write c (such calls fail while frozen).
//
// Freeze refuses, leaving c untouched (Socket Normal), a socket that is not
// an ESTABLISHED IPv4 connection (IPv4-mapped IPv6 sockets count as IPv4).
// The fd is reached through c.SyscallConn, so c stays usable after Thaw.
func Freeze(c *net.TCPConn) (*Frozen, error) {
	if c == nil {
		return nil, &Error{Op: "freeze", Socket: Unknown, Err: errors.New("nil connection")}
	}
	name := connName(c.LocalAddr(), c.RemoteAddr())
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, &Error{Op: "freeze", Conn: name, Socket: Unknown, Err: err}
	}
	if st, err := freeze(rc, tcpAddrPort(c.LocalAddr())); err != nil {
		return nil, &Error{Op: "freeze", Conn: name, Socket: st, Err: err}
	}
	return &Frozen{conn: c, rc: rc, name: name, socket: Repair}, nil
}

// Dump reads the connection's state. The socket stays frozen, whatever
// happens; Dump may be called again.
func (f *Frozen) Dump() (*State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.socket != Repair {
		return nil, &Error{Op: "dump", Conn: f.name, Socket: f.socket, Err: errNotFrozen}
	}
	s, _, err := dump(f.rc, tcpAddrPort(f.conn.LocalAddr()), tcpAddrPort(f.conn.RemoteAddr()), true)
	if err != nil {
		return nil, &Error{Op: "dump", Conn: f.name, Socket: Repair, Err: err}
	}
	return s, nil
}

// Thaw is the rollback: repair mode off, the connection serves on as before
// (the kernel sends a window probe, which the peer may ignore).
func (f *Frozen) Thaw() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.socket != Repair {
		return &Error{Op: "thaw", Conn: f.name, Socket: f.socket, Err: errNotFrozen}
	}
	st, err := thaw(f.rc)
	f.socket = st
	if err != nil {
		return &Error{Op: "thaw", Conn: f.name, Socket: st, Err: err}
	}
	return nil
}

// Close is the commit: it closes the connection while still in repair mode,
// so the kernel sends neither FIN nor RST; the peer hears nothing until the
// restored socket speaks.
func (f *Frozen) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.socket != Repair {
		return &Error{Op: "close", Conn: f.name, Socket: f.socket, Err: errNotFrozen}
	}
	f.socket = Closed
	if err := f.conn.Close(); err != nil {
		return &Error{Op: "close", Conn: f.name, Socket: Closed, Err: err}
	}
	return nil
}

// RestoreOptions tune Restore; nil applies the defaults.
type RestoreOptions struct {
	// TimestampOffset is added to the restored TCP timestamp clock, in the
	// clock's own units; it is rounded down to even (the low bit selects
	// usec mode). Zero means the default: two milliseconds (2, or 2000 in
	// usec mode), for the clock's tick. The dump already moved the clock
	// past every stamp the source may have sent (a paced socket stamps
	// ahead of now), so the client never sees it go back (PAWS). More
	// costs: until the client echoes the new clock, the restored socket
	// measures round trips from the old one, each too long by about the
	// offset; a second made BBR pace the first segments at kilobytes per
	// second, a 35 ms stall on every hand-off of a busy stream.
	TimestampOffset uint32
	// Transparent rebuilds the socket with IP_TRANSPARENT (CAP_NET_ADMIN),
	// so its local address need not be assigned to this host until
	// Activate, which turns it off again. Off, the address must already be
	// local.
	Transparent bool
}

// timestampOffset is the even offset to add to s.Timestamp.
func (o *RestoreOptions) timestampOffset(s *State) uint32 {
	if o != nil && o.TimestampOffset != 0 {
		return o.TimestampOffset &^ 1
	}
	if s.Timestamp&1 != 0 {
		return 2000
	}
	return 2
}

// Restored is a socket rebuilt from a State, still frozen in repair mode:
// Activate it (commit) or Discard it (rollback). Its methods are safe for
// concurrent use.
type Restored struct {
	mu   sync.Mutex
	conn *net.TCPConn // nil once handed on or closed
	name string
	// probe says whether leaving repair mode should send a window probe:
	// only a socket that may need the client's current window (it thought
	// the window closed, or has bytes to send) does; an idle one skips it,
	// which thousands of sockets in one hand-off feel.
	probe bool
	// transparent: rebuilt with IP_TRANSPARENT, which Activate clears.
	transparent bool
	peerClosed  bool // State.PeerClosed: Activate shuts it for reading
}

// Restore rebuilds the socket of s in repair mode, still frozen: it sends
// nothing until Activate. The local address of s must be assigned to this
// host, unless opts.Transparent; either way it must be before Activate, or
// nothing reaches the socket (a listener on the same port may exist).
// On failure nothing is left behind (Socket Closed).
func Restore(s *State, opts *RestoreOptions) (*Restored, error) {
	if s == nil {
		return nil, &Error{Op: "restore", Socket: Closed, Err: errors.New("nil state")}
	}
	name := s.Local.String() + "->" + s.Remote.String()
	if err := s.check(); err != nil {
		return nil, &Error{Op: "restore", Conn: name, Socket: Closed, Err: err}
	}
	transparent := opts != nil && opts.Transparent
	c, err := restore(s, opts.timestampOffset(s), transparent)
	if err != nil {
		return nil, &Error{Op: "restore", Conn: name, Socket: Closed, Err: err}
	}
	probe := s.Window.SndWnd == 0 || len(s.Unacked) > 0 || len(s.Unsent) > 0
	return &Restored{conn: c, name: name, probe: probe, transparent: transparent, peerClosed: s.PeerClosed}, nil
}

// Activate turns repair mode off and returns the live connection. The
// caller then writes the State's Unsent bytes before anything else. On
// failure the socket is closed silently (Socket Closed).
func (r *Restored) Activate() (*net.TCPConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil, &Error{Op: "activate", Conn: r.name, Socket: Closed, Err: errDone}
	}
	c := r.conn
	r.conn = nil
	if err := activate(c, r.probe, r.transparent, r.peerClosed); err != nil {
		c.Close() // still in repair mode: silent
		return nil, &Error{Op: "activate", Conn: r.name, Socket: Closed, Err: err}
	}
	return c, nil
}

// Inspect reads the rebuilt socket's state, still frozen, so a restore
// can be checked against the state it came from. Unlike Dump it leaves the
// receive queue's bytes unread and returns only their count: peeking that
// queue can make the kernel send the client a window update even in repair
// mode, and a target must send nothing before the commit (its kernel would
// first ask for the client's MAC from the VIP, and that ARP request alone
// turns the client to the target).
func (r *Restored) Inspect() (st *State, recvLen int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return nil, 0, &Error{Op: "inspect", Conn: r.name, Socket: Closed, Err: errDone}
	}
	rc, err := r.conn.SyscallConn()
	if err != nil {
		return nil, 0, &Error{Op: "inspect", Conn: r.name, Socket: Repair, Err: err}
	}
	s, inq, err := dump(rc, tcpAddrPort(r.conn.LocalAddr()), tcpAddrPort(r.conn.RemoteAddr()), false)
	if err != nil {
		return nil, 0, &Error{Op: "inspect", Conn: r.name, Socket: Repair, Err: err}
	}
	return s, inq, nil
}

// Discard is the rollback on the target: it closes the socket while still
// in repair mode, so nothing is sent.
func (r *Restored) Discard() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == nil {
		return &Error{Op: "discard", Conn: r.name, Socket: Closed, Err: errDone}
	}
	c := r.conn
	r.conn = nil
	if err := c.Close(); err != nil {
		return &Error{Op: "discard", Conn: r.name, Socket: Closed, Err: err}
	}
	return nil
}

// tcpAddrPort is the address Go keeps for a connection, IPv4 unmapped;
// the zero AddrPort if there is none.
func tcpAddrPort(a net.Addr) netip.AddrPort {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func connName(local, remote net.Addr) string {
	l, r := "?", "?"
	if local != nil {
		l = local.String()
	}
	if remote != nil {
		r = remote.String()
	}
	return l + "->" + r
}
