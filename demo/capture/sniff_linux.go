package capture

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/packet"
	"github.com/sockshift/sockshift/handoff/nsexec"
	"golang.org/x/sys/unix"
)

// sniffBuffer is the packet socket's receive buffer.
const sniffBuffer = 32 << 20

// Sniff opens a packet socket on iface inside the network namespace ns
// (the current one if ns is "") and keeps its ARP and TCP frames in ring
// until Close. It needs CAP_NET_RAW. nil cfg applies the defaults.
func Sniff(ns, iface string, ring *Ring, cfg *SniffConfig) (*Sniffer, error) {
	var conn *packet.Conn
	open := func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		// ETH_P_ALL: only such sockets see the frames this host sends.
		conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		if err != nil {
			return err
		}
		// A busy client sends tens of thousands of small segments a
		// second: a large buffer rides out a slow moment of the reader
		// instead of dropping frames (the gratuitous ARP among them).
		if rc, err := conn.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) {
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sniffBuffer) != nil {
					unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, sniffBuffer)
				}
			})
		}
		return nil
	}
	var err error
	if ns == "" {
		err = open()
	} else {
		err = nsexec.Do(ns, open)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: sniff %s in %q: %w", iface, ns, err)
	}
	s := &Sniffer{ring: ring, closer: conn.Close, done: make(chan struct{})}
	if cfg != nil {
		s.cfg = *cfg
	}
	go s.read(conn)
	return s, nil
}

func (s *Sniffer) read(conn *packet.Conn) {
	defer close(s.done)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		now := time.Now()
		data := make([]byte, min(n, Snaplen))
		copy(data, buf[:n])
		s.handle(Frame{Time: now, Data: data, Len: n})
	}
}
