package repair

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"github.com/sockshift/sockshift/handoff/internal/bufpool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var tcpStates = [...]string{"?", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

func tcpStateName(s byte) string {
	if int(s) < len(tcpStates) {
		return tcpStates[s]
	}
	return fmt.Sprintf("state %d", s)
}

// errNotEstablished is returned for sockets in any other state.
var errNotEstablished = ErrNotEstablished

// tcpInfo reads the raw struct tcp_info (its first bytes are enough).
func tcpInfo(fd int) ([]byte, error) {
	buf := make([]byte, sizeofTCPInfo)
	n, err := getsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_INFO, buf)
	if err != nil {
		return nil, os.NewSyscallError("getsockopt TCP_INFO", err)
	}
	if n < sizeofTCPInfo {
		return nil, fmt.Errorf("getsockopt TCP_INFO: short answer (%d bytes)", n)
	}
	return buf[:n], nil
}

// stampLead bounds how far ahead of TCP_TIMESTAMP ("now") the socket may
// already have stamped a segment, in the clock's units (ms, or us when
// usec is set). A paced socket (BBR, or fq) stamps each segment, pure ACKs
// too, with its departure time, and moves that time on by the length of
// what it just sent at the pacing rate: the lead is at most one send's
// worth. A send is at most 64 KB, or about 1 ms of the rate (TSO
// autosizing, with at least two segments); doubled, for a rate that fell
// since.
func stampLead(info []byte, usec bool) uint32 {
	rate := binary.NativeEndian.Uint64(info[tcpiPacingRate:])
	if rate == 0 || rate == ^uint64(0) {
		return 0 // not paced: segments leave stamped "now"
	}
	mss := uint64(binary.NativeEndian.Uint32(info[tcpiSndMSS:]))
	send := min(64<<10, max(rate/1000, 2*mss))
	unit := uint64(1000) // per second
	if usec {
		unit = 1000000
	}
	lead := (2*send*unit + rate - 1) / rate
	return uint32(min(lead, maxStampLead*unit))
}

// maxStampLead caps stampLead, in seconds: the restored socket's first
// round trip estimate can be as long as the lead (see RestoreOptions).
const maxStampLead = 1

func setRepair(fd, v int) error {
	return os.NewSyscallError("setsockopt TCP_REPAIR", unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, v))
}

// control runs fn on the fd of rc; a closed connection maps to Closed.
func control(rc syscall.RawConn, fn func(fd int) (SocketState, error)) (SocketState, error) {
	var (
		st    SocketState
		opErr error
	)
	err := rc.Control(func(fd uintptr) { st, opErr = fn(int(fd)) })
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return Closed, err
		}
		return Unknown, err
	}
	return st, opErr
}

// freeze puts the socket in repair mode. local is the address Go knows
// (invalid: asked of the kernel). Repair mode is refused (EPERM) for a
// listener and a closed socket, and the state is read only after it is
// on: two system calls a socket, which thousands feel. An established
// connection moves, and so does one whose peer has closed (CLOSE_WAIT):
// the application has yet to read its last bytes and answer them.
func freeze(rc syscall.RawConn, local netip.AddrPort) (SocketState, error) {
	return control(rc, func(fd int) (SocketState, error) {
		if !local.IsValid() {
			var err error
			if local, err = sockAddr(fd, unix.Getsockname, "getsockname"); err != nil {
				return Normal, err
			}
		}
		if !local.Addr().Is4() {
			return Normal, fmt.Errorf("local %v: %w", local, errNotIPv4)
		}
		if err := setRepair(fd, unix.TCP_REPAIR_ON); err != nil {
			if errors.Is(err, unix.EPERM) {
				if serr := checkMovable(fd); serr != nil {
					return Normal, serr
				}
			}
			return Normal, err
		}
		// Closing from this side (the application closed it), or closed:
		// such a socket cannot be moved, so let it go on.
		if err := checkMovable(fd); err != nil {
			if offErr := setRepair(fd, unix.TCP_REPAIR_OFF_NO_WP); offErr != nil {
				return Repair, errors.Join(err, offErr)
			}
			return Normal, err
		}
		return Repair, nil
	})
}

// checkMovable fails unless the connection is established or only its
// peer has closed it.
func checkMovable(fd int) error {
	info, err := tcpInfo(fd)
	if err != nil {
		return err
	}
	if st := info[tcpiState]; st != tcpEstablished && st != tcpCloseWait {
		return fmt.Errorf("%w (%s)", errNotEstablished, tcpStateName(info[tcpiState]))
	}
	return nil
}

// addrPort converts a socket address, unmapping IPv4-mapped IPv6.
func addrPort(sa unix.Sockaddr) (netip.AddrPort, bool) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), true
	}
	return netip.AddrPort{}, false
}

func thaw(rc syscall.RawConn) (SocketState, error) {
	return control(rc, func(fd int) (SocketState, error) {
		// TCP_REPAIR_OFF (not _NO_WP): the window probe tells the peer our
		// window again, as a live socket would.
		if err := setRepair(fd, unix.TCP_REPAIR_OFF); err != nil {
			return Repair, err
		}
		return Normal, nil
	})
}

// errRace means the socket changed under the dump (a packet came in):
// the dump is retried.
var errRace = errors.New("socket changed during the dump")

const dumpAttempts = 5

// dump reads the state of a socket in repair mode. Without peekRecv the
// receive queue's bytes are not read, only counted (the int returned):
// peeking that queue can make the kernel send the client a window update,
// repair mode or not.
func dump(rc syscall.RawConn, local, remote netip.AddrPort, peekRecv bool) (*State, int, error) {
	var s *State
	var inq int
	_, err := control(rc, func(fd int) (SocketState, error) {
		var err error
		for range dumpAttempts {
			s, inq, err = dumpOnce(fd, local, remote, peekRecv)
			if !errors.Is(err, errRace) {
				break
			}
		}
		// Leave no queue selected, as Freeze found it.
		qerr := os.NewSyscallError("setsockopt TCP_REPAIR_QUEUE",
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue))
		if err == nil {
			err = qerr
		}
		return Repair, err
	})
	if err != nil {
		return nil, 0, err
	}
	return s, inq, nil
}

// dumpOnce reads the state once. local and remote are the addresses Go
// already knows; invalid ones are asked of the kernel.
func dumpOnce(fd int, local, remote netip.AddrPort, peekRecv bool) (*State, int, error) {
	s, info, err := dumpOptions(fd, local, remote)
	if err != nil {
		return nil, 0, err
	}
	outq, unsent, inq, err := queueSizes(fd)
	if err != nil {
		return nil, 0, err
	}
	if err := dumpSockopts(fd, s, info); err != nil {
		return nil, 0, err
	}
	wbuf := make([]byte, sizeofRepairWindow)
	if n, err := getsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, wbuf); err != nil {
		return nil, 0, os.NewSyscallError("getsockopt TCP_REPAIR_WINDOW", err)
	} else if n != sizeofRepairWindow {
		return nil, 0, fmt.Errorf("getsockopt TCP_REPAIR_WINDOW: %d bytes, want %d", n, sizeofRepairWindow)
	}
	s.Window = unmarshalWindow(wbuf)
	peekLen := 0
	if peekRecv {
		peekLen = inq
	}
	if err := dumpQueues(fd, s, outq, unsent, inq, peekLen); err != nil {
		return nil, 0, err
	}
	// Nothing may have moved while we read: an ACK shrinks the send queue,
	// data grows the receive queue, and either changes the window.
	if err := recheck(fd, outq, inq, s.Window, wbuf); err != nil {
		s.Release()
		return nil, 0, err
	}
	if s.PeerClosed {
		// The window was last moved past the FIN; the rebuilt socket
		// stops before it, and the kernel refuses a window ahead of it.
		if next := s.RecvSeq + uint32(inq); int32(s.Window.RcvWup-next) > 0 {
			s.Window.RcvWup = next
		}
	}
	return s, inq, nil
}

// dumpOptions reads the connection's state and negotiated options
// (TCP_INFO) and its addresses, where not given.
func dumpOptions(fd int, local, remote netip.AddrPort) (*State, []byte, error) {
	info, err := tcpInfo(fd)
	if err != nil {
		return nil, nil, err
	}
	// A peer's FIN that came in after the freeze (the kernel still takes
	// segments then) leaves the socket in CLOSE_WAIT: it is dumped as the
	// established connection it was just before, and the FIN, which the
	// catcher kept, reaches the rebuilt socket with the other caught frames.
	if st := info[tcpiState]; st != tcpEstablished && st != tcpCloseWait {
		return nil, nil, fmt.Errorf("%w (%s)", errNotEstablished, tcpStateName(st))
	}
	s := &State{
		PeerClosed:    info[tcpiState] == tcpCloseWait,
		SACK:          info[tcpiOptions]&tcpiOptSACK != 0,
		Timestamps:    info[tcpiOptions]&tcpiOptTimestamps != 0,
		WindowScaling: info[tcpiOptions]&tcpiOptWscale != 0,
	}
	if s.WindowScaling {
		s.SndWscale, s.RcvWscale = info[tcpiWscale]&0xf, info[tcpiWscale]>>4
	}
	s.Local, s.Remote = local, remote
	if !s.Local.IsValid() {
		if s.Local, err = sockAddr(fd, unix.Getsockname, "getsockname"); err != nil {
			return nil, nil, err
		}
	}
	if !s.Remote.IsValid() {
		if s.Remote, err = sockAddr(fd, unix.Getpeername, "getpeername"); err != nil {
			return nil, nil, err
		}
	}
	return s, info, nil
}

// queueSizes reads the send queue (and its never-sent part) and the
// receive queue, in bytes.
func queueSizes(fd int) (outq, unsent, inq int, err error) {
	if outq, err = ioctlInt(fd, unix.SIOCOUTQ, "SIOCOUTQ"); err != nil {
		return 0, 0, 0, err
	}
	// An empty send queue has nothing unsent: one call fewer on idle sockets.
	if outq > 0 {
		if unsent, err = ioctlInt(fd, siocOutqNSD, "SIOCOUTQNSD"); err != nil {
			return 0, 0, 0, err
		}
	}
	if inq, err = ioctlInt(fd, unix.SIOCINQ, "SIOCINQ"); err != nil {
		return 0, 0, 0, err
	}
	if unsent > outq {
		return 0, 0, 0, errRace
	}
	if outq > MaxQueue || inq > MaxQueue {
		return 0, 0, 0, fmt.Errorf("queues of %d/%d bytes above MaxQueue (%d)", inq, outq, MaxQueue)
	}
	return outq, unsent, inq, nil
}

// dumpSockopts reads the socket options a restore sets again, and the
// timestamp clock.
func dumpSockopts(fd int, s *State, info []byte) error {
	ints := []struct {
		level, opt int
		name       string
		dst        *uint32
	}{
		{unix.IPPROTO_TCP, unix.TCP_MAXSEG, "TCP_MAXSEG", &s.MSS},
		{unix.IPPROTO_TCP, unix.TCP_TIMESTAMP, "TCP_TIMESTAMP", &s.Timestamp},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, "TCP_KEEPIDLE", &s.KeepIdle},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, "TCP_KEEPINTVL", &s.KeepIntvl},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, "TCP_KEEPCNT", &s.KeepCnt},
	}
	for _, o := range ints {
		v, err := unix.GetsockoptInt(fd, o.level, o.opt)
		if err != nil {
			return os.NewSyscallError("getsockopt "+o.name, err)
		}
		*o.dst = uint32(v)
	}
	// Both buffer sizes in one call (what SO_SNDBUF and SO_RCVBUF read).
	var mem [unix.SK_MEMINFO_VARS]uint32
	if n, err := getsockoptBytes(fd, unix.SOL_SOCKET, unix.SO_MEMINFO, unsafe.Slice((*byte)(unsafe.Pointer(&mem[0])), 4*len(mem))); err != nil {
		return os.NewSyscallError("getsockopt SO_MEMINFO", err)
	} else if n < 4*(unix.SK_MEMINFO_SNDBUF+1) {
		return fmt.Errorf("getsockopt SO_MEMINFO: short answer (%d bytes)", n)
	}
	s.RcvBuf, s.SndBuf = mem[unix.SK_MEMINFO_RCVBUF], mem[unix.SK_MEMINFO_SNDBUF]
	// The restored clock starts past every stamp the client has seen.
	s.Timestamp += stampLead(info, s.Timestamp&1 != 0) &^ 1
	bools := []struct {
		level, opt int
		name       string
		dst        *bool
	}{
		{unix.IPPROTO_TCP, unix.TCP_NODELAY, "TCP_NODELAY", &s.NoDelay},
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, "SO_KEEPALIVE", &s.KeepAlive},
	}
	for _, o := range bools {
		v, err := unix.GetsockoptInt(fd, o.level, o.opt)
		if err != nil {
			return os.NewSyscallError("getsockopt "+o.name, err)
		}
		*o.dst = v != 0
	}
	return nil
}

// dumpQueues reads both queues' sequence numbers and bytes (peekLen of
// the receive queue) into s.
func dumpQueues(fd int, s *State, outq, unsent, inq, peekLen int) error {
	rcvNxt, rq, err := readQueue(fd, tcpRecvQueue, peekLen)
	if err != nil {
		return err
	}
	writeSeq, sq, err := readQueue(fd, tcpSendQueue, outq)
	if err != nil {
		bufpool.Put(rq)
		return err
	}
	s.bufs = [2][]byte{rq, sq}
	s.RecvSeq = rcvNxt - uint32(inq)
	if s.PeerClosed {
		s.RecvSeq-- // rcv_nxt counts the FIN; SIOCINQ does not
	}
	s.SendSeq = writeSeq - uint32(outq)
	s.RecvQueue = rq
	if acked := outq - unsent; acked > 0 {
		s.Unacked = sq[:acked:acked]
	}
	if unsent > 0 {
		s.Unsent = sq[outq-unsent:]
	}
	return nil
}

// recheck fails with errRace if the queues or the window moved since they
// were read.
func recheck(fd, outq, inq int, w Window, wbuf []byte) error {
	if outq2, err := ioctlInt(fd, unix.SIOCOUTQ, "SIOCOUTQ"); err != nil {
		return err
	} else if outq2 != outq {
		return errRace
	}
	if inq2, err := ioctlInt(fd, unix.SIOCINQ, "SIOCINQ"); err != nil {
		return err
	} else if inq2 != inq {
		return errRace
	}
	if _, err := getsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, wbuf); err != nil {
		return os.NewSyscallError("getsockopt TCP_REPAIR_WINDOW", err)
	} else if unmarshalWindow(wbuf) != w {
		return errRace
	}
	return nil
}

func sockAddr(fd int, get func(int) (unix.Sockaddr, error), name string) (netip.AddrPort, error) {
	sa, err := get(fd)
	if err != nil {
		return netip.AddrPort{}, os.NewSyscallError(name, err)
	}
	ap, ok := addrPort(sa)
	if !ok || !ap.Addr().Is4() {
		return netip.AddrPort{}, fmt.Errorf("%s %v: %w", name, ap, errNotIPv4)
	}
	return ap, nil
}

func ioctlInt(fd int, req uint, name string) (int, error) {
	v, err := unix.IoctlGetInt(fd, req)
	if err != nil {
		return 0, os.NewSyscallError("ioctl "+name, err)
	}
	if v < 0 {
		return 0, fmt.Errorf("ioctl %s: negative length %d", name, v)
	}
	return v, nil
}

// readQueue selects queue q and peeks its n bytes. It returns the queue's
// TCP_QUEUE_SEQ: rcv_nxt for the receive queue, write_seq for the send
// queue, i.e. the sequence number just past the queued bytes.
func readQueue(fd, q, n int) (uint32, []byte, error) {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q); err != nil {
		return 0, nil, os.NewSyscallError("setsockopt TCP_REPAIR_QUEUE", err)
	}
	seq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return 0, nil, os.NewSyscallError("getsockopt TCP_QUEUE_SEQ", err)
	}
	if n == 0 {
		return uint32(seq), nil, nil
	}
	// One byte more than expected, so a queue that grew shows as a
	// mismatch instead of a silent truncation.
	buf := bufpool.Get(n + 1)
	var got int
	for {
		got, _, err = unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err != unix.EINTR {
			break
		}
	}
	fail := func(err error) (uint32, []byte, error) {
		bufpool.Put(buf)
		return 0, nil, err
	}
	switch {
	case err == unix.EFAULT || err == unix.EAGAIN:
		// The send queue outgrew the buffer / the receive queue emptied.
		return fail(errRace)
	case err != nil:
		return fail(os.NewSyscallError("recv MSG_PEEK", err))
	case got != n:
		return fail(errRace)
	}
	seq2, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
	if err != nil {
		return fail(os.NewSyscallError("getsockopt TCP_QUEUE_SEQ", err))
	}
	if seq2 != seq {
		return fail(errRace)
	}
	// The whole buffer's capacity stays with the slice, for State.Release.
	return uint32(seq), buf[:n], nil
}

// restore builds the socket of s, in repair mode. Go's dialer makes it
// (socket, bind, connect, poller), with repair mode on before the bind:
// connect then sends no SYN and returns at once. (Wrapping a raw fd with
// net.FileConn instead turns Nagle off and keep-alive on at 15 s, over the
// restored settings; the dialer is told to leave keep-alive alone, and
// Nagle is set after it.) On failure the socket is closed, still in repair
// mode, so nothing is sent.
func restore(s *State, tsOffset uint32, transparent bool) (*net.TCPConn, error) {
	var cerr error
	d := net.Dialer{
		KeepAlive: -1, // the dumped keep-alive settings are set below
		Control: func(_, _ string, rc syscall.RawConn) error {
			err := rc.Control(func(fd uintptr) { cerr = beforeConnect(int(fd), s, transparent) })
			return errors.Join(err, cerr)
		},
	}
	c, err := d.DialTCP(context.Background(), "tcp4", s.Local, s.Remote)
	if err != nil && cerr == nil && errors.Is(err, unix.EADDRNOTAVAIL) && dropStaleCopy(s) {
		c, err = d.DialTCP(context.Background(), "tcp4", s.Local, s.Remote)
	}
	if err != nil {
		if cerr != nil {
			return nil, cerr // the dialer's wrapping adds nothing to it
		}
		return nil, err
	}
	rc, err := c.SyscallConn()
	if err == nil {
		err = rc.Control(func(fd uintptr) { cerr = afterConnect(int(fd), s, tsOffset) })
	}
	if err = errors.Join(err, cerr); err != nil {
		c.Close() // still in repair mode: silent
		return nil, err
	}
	return c, nil
}

// dropStaleCopy destroys a socket of this host with the addresses of s,
// which makes connect fail with EADDRNOTAVAIL, if it cannot be the live
// connection: one no longer established (an application closed it, and it
// waits for its FIN to be acknowledged, or in TIME_WAIT), or an
// established one on an address this host does not hold, whose packets
// cannot arrive here (a copy a source thawed after its target died while
// resuming: the client had seen the target close it, and may since have
// connected again from the same port). It reports whether it destroyed
// one. An established socket on an address held here is left alone.
func dropStaleCopy(s *State) bool {
	local, remote := net.TCPAddrFromAddrPort(s.Local), net.TCPAddrFromAddrPort(s.Remote)
	sk, err := netlink.SocketGet(local, remote)
	if err != nil || (sk.State == tcpEstablished && held(s.Local.Addr())) {
		return false
	}
	// Its reset, if it sends one, has no route: the address is not here,
	// or the socket is closing anyway.
	return netlink.SocketDestroy(local, remote) == nil
}

// held reports whether addr is assigned to this host: a socket can be
// bound to it without IP_TRANSPARENT.
func held(addr netip.Addr) bool {
	c, err := net.ListenPacket("udp4", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		return !errors.Is(err, unix.EADDRNOTAVAIL) // in doubt, held
	}
	c.Close()
	return true
}

func setInt(fd, level, opt int, name string, v int) error {
	return os.NewSyscallError("setsockopt "+name, unix.SetsockoptInt(fd, level, opt, v))
}

func setQueue(fd, q int) error {
	return setInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, "TCP_REPAIR_QUEUE", q)
}

// beforeConnect puts a new socket in repair mode and sets what must be set
// before its bind and connect.
func beforeConnect(fd int, s *State, transparent bool) error {
	// Transparent: the socket may bind and connect from an address this
	// host does not hold yet (a target that takes the VIP only at the
	// commit).
	if transparent {
		if err := setInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT", 1); err != nil {
			return err
		}
	}
	// Repair mode grants forced reuse (SK_FORCE_REUSE), which lets the
	// bind succeed beside a listener on the same port; SO_REUSEADDR would
	// add nothing (repair-off sets no reuse either way).
	if err := setRepair(fd, unix.TCP_REPAIR_ON); err != nil {
		return err
	}
	// The MSS goes in before connect, which sizes segments from it: set
	// only later (TCP_REPAIR_OPTIONS), it would not count until the route's
	// MTU changed, and the socket would send 524-byte segments (the
	// default 536 less the timestamp option) all its life. It caps the MSS
	// at what the client advertised, which the dumped value already is
	// (the kernel takes at most 32767: only loopback's MTU goes above).
	if s.MSS != 0 {
		if err := setInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG, "TCP_MAXSEG", int(min(s.MSS, maxUserMSS))); err != nil {
			return err
		}
	}
	// The kernel doubles what it is given: pass half, so getsockopt reads
	// back the dumped size (odd sizes come back one byte smaller, never
	// larger: inflating them would grow the window on every hand-off).
	// Both are forced, and so locked: the kernel no longer autotunes them.
	// Left unlocked (SO_BUF_LOCK after these, or raised with SO_RCVLOWAT),
	// a busy stream's buffer grew to tcp_rmem's maximum within a few
	// hand-offs, each then moving 30 MB: a restored socket's receive
	// round-trip estimate starts afresh, at milliseconds where the original
	// had learned microseconds, and autotuning sizes the buffer by it.
	// Locked, a buffer that fills makes Linux 6.18 drop the next segment
	// and shrink the window to two segments; should those be lost, the
	// client waits for its retransmission timeout, as with any locked
	// buffer (scripts/rcvbuf-probe; README, Performance).
	if s.SndBuf != 0 {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, "SO_SNDBUFFORCE", int(s.SndBuf/2)); err != nil {
			return err
		}
	}
	if s.RcvBuf != 0 {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, "SO_RCVBUFFORCE", int(s.RcvBuf/2)); err != nil {
			return err
		}
	}
	// Queue sequence numbers name the start of each queue; sending the
	// queued bytes below advances them to write_seq and rcv_nxt.
	for _, q := range []struct {
		id  int
		seq uint32
	}{{tcpSendQueue, s.SendSeq}, {tcpRecvQueue, s.RecvSeq}} {
		if err := setQueue(fd, q.id); err != nil {
			return err
		}
		if err := setInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ", int(int32(q.seq))); err != nil {
			return err
		}
	}
	return nil
}

// afterConnect rebuilds the rest of a connected socket still in repair
// mode: options, clock, queued bytes, window.
func afterConnect(fd int, s *State, tsOffset uint32) error {
	opts := []unix.TCPRepairOpt{{Code: tcpoptMaxseg, Val: s.MSS}}
	if s.WindowScaling {
		opts = append(opts, unix.TCPRepairOpt{Code: tcpoptWindow, Val: uint32(s.SndWscale) | uint32(s.RcvWscale)<<16})
	}
	if s.SACK {
		opts = append(opts, unix.TCPRepairOpt{Code: tcpoptSACKPerm})
	}
	if s.Timestamps {
		opts = append(opts, unix.TCPRepairOpt{Code: tcpoptTimestamp})
	}
	if err := unix.SetsockoptTCPRepairOpt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, opts); err != nil {
		return os.NewSyscallError("setsockopt TCP_REPAIR_OPTIONS", err)
	}
	// The offset is even: the low bit of the value selects usec timestamps.
	if err := setInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP, "TCP_TIMESTAMP", int(int32(s.Timestamp+tsOffset&^1))); err != nil {
		return err
	}

	// The receive queue is still selected (the sequence loop ended with
	// it); an idle connection skips the queue work, which thousands of
	// sockets in one hand-off feel.
	if len(s.RecvQueue) > 0 {
		if err := sendAll(fd, s.RecvQueue, "receive queue"); err != nil {
			return err
		}
	}
	// Bytes sent in repair mode with the send queue selected count as
	// already sent: the kernel retransmits them if they are not acked.
	if len(s.Unacked) > 0 {
		if err := setQueue(fd, tcpSendQueue); err != nil {
			return err
		}
		if err := sendAll(fd, s.Unacked, "unacked queue"); err != nil {
			return err
		}
	}
	// The window goes last: the kernel checks it against rcv_nxt, which the
	// receive queue just advanced.
	w := s.repairWindow()
	if err := setsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, w.marshal()); err != nil {
		// The kernel refuses max_window < snd_wnd, snd_wl1 after
		// rcv_nxt + rcv_wnd, and rcv_wup after rcv_nxt: say all of them.
		return fmt.Errorf("%w (snd_wl1 %d snd_wnd %d max_window %d rcv_wnd %d rcv_wup %d; rcv_nxt %d)",
			os.NewSyscallError("setsockopt TCP_REPAIR_WINDOW", err),
			w.SndWl1, w.SndWnd, w.MaxWindow, w.RcvWnd, w.RcvWup, s.RecvSeq+uint32(len(s.RecvQueue)))
	}

	// Go's dialer turned Nagle off; the application may have had it on.
	if !s.NoDelay {
		if err := setInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, "TCP_NODELAY", 0); err != nil {
			return err
		}
	}
	for _, o := range []struct {
		opt  int
		name string
		v    uint32
	}{{unix.TCP_KEEPIDLE, "TCP_KEEPIDLE", s.KeepIdle}, {unix.TCP_KEEPINTVL, "TCP_KEEPINTVL", s.KeepIntvl},
		{unix.TCP_KEEPCNT, "TCP_KEEPCNT", s.KeepCnt}} {
		if o.v == 0 { // not dumped: keep the system default
			continue
		}
		if err := setInt(fd, unix.IPPROTO_TCP, o.opt, o.name, int(int32(o.v))); err != nil {
			return err
		}
	}
	// The dialer left keep-alive off.
	if !s.KeepAlive {
		return nil
	}
	return setInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, "SO_KEEPALIVE", 1)
}

// sendAll writes b into the selected repair queue. The kernel may take
// less than offered (the receive queue is rebuilt in skbs of at most
// MAX_SKB_FRAGS pages), so it loops; MSG_DONTWAIT because a full send
// buffer would never drain while frozen.
func sendAll(fd int, b []byte, what string) error {
	for off := 0; off < len(b); {
		n, err := unix.SendmsgN(fd, b[off:], nil, nil, unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return fmt.Errorf("restore %s at byte %d of %d: %w", what, off, len(b), os.NewSyscallError("sendmsg", err))
		case n <= 0:
			return fmt.Errorf("restore %s at byte %d of %d: kernel took nothing", what, off, len(b))
		}
		off += n
	}
	return nil
}

// activate takes a wrapped socket out of repair mode. With probe,
// repair-off sends a window probe: the client's answer tells the restored
// socket the client's current window. Without it (TCP_REPAIR_OFF_NO_WP) a
// socket restored with a zero send window waited for its own persist
// timer, seconds with no RTT estimate: 3 stalls in 30 runs of 30 hand-offs
// under a stream, against 0.
//
// A transparent socket becomes a plain one: once its address is local it
// needs IP_TRANSPARENT no more, and kept, it would let the socket send
// after a later hand-off removed the address. Repair mode stops no timer:
// a frozen socket's loss probe or retransmission still goes out, and a
// plain socket's route fails once the address is gone, a transparent
// one's does not. A loss probe sent after the dump carries new data the
// rebuilt socket does not know it sent: the client then acknowledges
// beyond the new socket's snd_nxt, which drops every such ACK, and the
// connection stalls for good (the soak's streams did, 1 run in 3).
//
// A connection whose peer had closed it (State.PeerClosed) is shut for
// reading: it reads its queued bytes, then the end (no packet goes out).
func activate(c *net.TCPConn, probe, transparent, peerClosed bool) error {
	how := unix.TCP_REPAIR_OFF_NO_WP
	if probe {
		how = unix.TCP_REPAIR_OFF
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	_, err = control(rc, func(fd int) (SocketState, error) {
		if transparent {
			if err := setInt(fd, unix.SOL_IP, unix.IP_TRANSPARENT, "IP_TRANSPARENT", 0); err != nil {
				return Repair, err
			}
		}
		if err := setRepair(fd, how); err != nil {
			return Normal, err
		}
		if peerClosed {
			if err := unix.Shutdown(fd, unix.SHUT_RD); err != nil {
				return Normal, os.NewSyscallError("shutdown SHUT_RD", err)
			}
		}
		// Leaving repair mode clears the socket's address reuse, which a
		// connection accepted from a Go listener (SO_REUSEADDR) had: without
		// it, a server restarted while moved-in connections linger (closing,
		// on this host) cannot listen on their port.
		return Normal, setInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR", 1)
	})
	return err
}
