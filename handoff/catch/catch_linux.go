package catch

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// socketBuffer sizes the socket's queues: the receive queue absorbs a burst
// of super-frames between two reads, the send queue a batch being re-sent.
const socketBuffer = 8 << 20

// Arm starts catching frames for vip arriving on the interface, now. It
// opens the packet socket in the calling thread's network namespace; the
// filter is attached before the socket is bound, so nothing else is ever
// queued. Call it right before the freeze: frames that reach the source
// between Arm and the freeze are kept too, and re-sent later as duplicates
// that the target's TCP discards (answering with a duplicate ACK).
//
// Equivalent to tcpdump -i IF 'ether dst OURS and ip dst VIP and tcp'.
func Arm(ifname string, vip netip.Addr, cfg *Config) (*Catcher, error) {
	o, err := resolve(vip, cfg)
	if err != nil {
		return nil, fmt.Errorf("catch: arm %v on %s: %w", vip, ifname, err)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("catch: arm %v on %s: %w", vip, ifname, err)
	}
	mac := ifi.HardwareAddr
	if len(mac) != 6 || isZero(mac) {
		return nil, fmt.Errorf("catch: arm %v on %s: not an Ethernet interface (hardware address %q)", vip, ifname, mac)
	}
	prog, err := filter(mac, vip, o.ports)
	if err != nil {
		return nil, fmt.Errorf("catch: arm %v on %s: %w", vip, ifname, err)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("catch: arm %v on %s: assemble filter: %w", vip, ifname, err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, unix.ETH_P_IP, &packet.Config{Filter: raw})
	if err != nil {
		return nil, fmt.Errorf("catch: arm %v on %s: %w", vip, ifname, err)
	}
	lc, err := configure(conn)
	if err != nil {
		// Arm fails anyway; the slow close does not matter here.
		_ = conn.Close()
		return nil, fmt.Errorf("catch: arm %v on %s: %w", vip, ifname, err)
	}
	return start(lc, ifname, vip, append(net.HardwareAddr(nil), mac...), o), nil
}

// configure sets the socket options a Catcher needs. PACKET_VNET_HDR takes
// effect at each read, so frames queued since the bind get their header
// too.
func configure(conn *packet.Conn) (*linuxConn, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		s := int(fd)
		if err := unix.SetsockoptInt(s, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			serr = os.NewSyscallError("setsockopt PACKET_VNET_HDR", err)
			return
		}
		// Best effort, and redundant today: bound to ETH_P_IP, the socket
		// never sees transmitted frames (Linux shows them only to ETH_P_ALL
		// sockets), and the filter on our MAC keeps out what we re-send.
		_ = unix.SetsockoptInt(s, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
		// Best effort too: the FORCE variants need CAP_NET_ADMIN, which
		// the socket already required; fall back to the capped ones.
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
		}
		if unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
		}
	})
	if err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, serr
	}
	return &linuxConn{c: conn, rc: rc}, nil
}

func isZero(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}

// linuxConn is a frameConn on an AF_PACKET socket with PACKET_VNET_HDR.
type linuxConn struct {
	c  *packet.Conn
	rc syscall.RawConn
}

func (l *linuxConn) readFrame(b []byte) (int, error) {
	var n int
	var serr error
	// Through the raw conn, for MSG_TRUNC: it makes recvfrom return the
	// frame's full length, so a truncated frame is seen, not forwarded.
	// The read still waits in the runtime poller and obeys the deadline.
	err := l.rc.Read(func(fd uintptr) bool {
		for {
			n, _, serr = unix.Recvfrom(int(fd), b, unix.MSG_TRUNC)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	})
	if err != nil {
		return 0, err
	}
	if errors.Is(serr, unix.EINVAL) {
		// The kernel could not describe this frame in a virtio header and
		// has already discarded it; the next one may be fine.
		return 0, errUnreadable
	}
	if serr != nil {
		return 0, os.NewSyscallError("recvfrom", serr)
	}
	return n, nil
}

func (l *linuxConn) writeFrame(b []byte) error {
	// A raw socket sends the frame's own Ethernet header; the address only
	// has to be well formed.
	_, err := l.c.WriteTo(b, &packet.Addr{HardwareAddr: b[vnetHdrLen : vnetHdrLen+6]})
	return err
}

func (l *linuxConn) setReadDeadline(t time.Time) error  { return l.c.SetReadDeadline(t) }
func (l *linuxConn) setWriteDeadline(t time.Time) error { return l.c.SetWriteDeadline(t) }

func (l *linuxConn) kernelDrops() int {
	st, err := l.c.Stats() // resets the kernel's counters
	if err != nil {
		return 0
	}
	return int(st.Drops)
}

func (l *linuxConn) close() error { return l.c.Close() }
