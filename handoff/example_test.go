package handoff_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sockshift/sockshift/handoff"
	"github.com/sockshift/sockshift/handoff/wire"
)

// lineEcho is a complete service that hands off: it answers each line with
// the same line, and closes a connection idle for lineIdle. Its state per
// connection is when that connection's idle time runs out and what it read
// and has not yet echoed, which is all a target needs to go on.
type lineEcho struct{ pauser handoff.Pauser }

// lineIdle is how long a client may stay silent.
const lineIdle = 2 * time.Second

func (s *lineEcho) Name() string { return "lines" }

// Serve accepts through the Pauser: during a hand-off it hands out no
// connection, and those the kernel accepts meanwhile move with the rest.
func (s *lineEcho) Serve(ln *net.TCPListener) error {
	l := s.pauser.Listen(ln)
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			return err
		}
		s.start(c, nil)
	}
}

// Quiesce stops every connection between two reads or inside a write.
func (s *lineEcho) Quiesce(ctx context.Context) (handoff.Paused, error) {
	return s.pauser.Pause(ctx, nil)
}

// Adopt goes on with connections from the source. Unsent bytes were
// whole lines written there: echoing them again sends them.
func (s *lineEcho) Adopt(_ []byte, conns []handoff.Adopted) error {
	for _, a := range conns {
		if a.New { // accepted during the hand-off: ours to serve from the start
			s.start(a.Conn, nil)
			continue
		}
		if len(a.State) < 8 {
			a.Conn.Close() // not a snapshot of ours
			continue
		}
		// The idle time runs on from where it was: a hand-off is no activity.
		idleEnd := time.Unix(0, int64(binary.BigEndian.Uint64(a.State)))
		s.startAt(a.Conn, append(a.Unsent, a.State[8:]...), idleEnd)
	}
	return nil
}

type lineConn struct {
	c       *net.TCPConn
	gate    *handoff.Gate
	mu      sync.Mutex
	pending []byte    // read, not yet echoed
	idleEnd time.Time // when a silent client is let go
}

func (s *lineEcho) start(c *net.TCPConn, pending []byte) {
	s.startAt(c, pending, time.Now().Add(lineIdle))
}

func (s *lineEcho) startAt(c *net.TCPConn, pending []byte, idleEnd time.Time) {
	l := &lineConn{c: c, pending: pending, idleEnd: idleEnd}
	l.gate = s.pauser.Add(c, l.snapshot) // before anything can pause it
	go l.serve()
}

func (l *lineConn) snapshot() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append(binary.BigEndian.AppendUint64(nil, uint64(l.idleEnd.UnixNano())), l.pending...)
}

func (l *lineConn) serve() {
	buf := make([]byte, 4096)
	for {
		l.mu.Lock()
		lines := l.pending[:bytes.LastIndexByte(l.pending, '\n')+1]
		l.mu.Unlock()
		var n int
		var err error
		if len(lines) > 0 {
			n, err = l.c.Write(lines)
			l.mu.Lock()
			l.pending = l.pending[n:]
		} else {
			// Deadlines go through the gate, which gives them back after a
			// pause; an expired one makes Check say Failed.
			l.gate.SetReadDeadline(l.idleEnd)
			n, err = l.c.Read(buf)
			l.mu.Lock()
			l.pending = append(l.pending, buf[:n]...)
			if n > 0 {
				l.idleEnd = time.Now().Add(lineIdle)
			}
		}
		l.mu.Unlock()
		if err != nil {
			switch l.gate.Check(err) {
			case handoff.Retry: // paused, stayed here
			case handoff.Moved: // on the target now
				return
			case handoff.Failed:
				l.c.Close()
				return
			}
		}
	}
}

// runLineServer is one server of the example: the service on port 7007 of
// every address, and a node that takes hand-offs from its peer.
func runLineServer(ctx context.Context, cfg handoff.Config) (*handoff.Node, error) {
	svc := &lineEcho{}
	cfg.Services = []handoff.Service{svc}
	n, err := handoff.NewNode(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: 7007})
	if err != nil {
		n.Close()
		return nil, err
	}
	// The hand-off channel opens here, not in the goroutine: the node
	// takes hand-offs (its peer's dial is queued) as soon as this returns.
	chLn, err := net.Listen("tcp4", n.ChannelAddr())
	if err != nil {
		ln.Close()
		n.Close()
		return nil, err
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	go svc.Serve(ln)
	go n.ServeListener(ctx, chLn)
	return n, nil
}

// A line-echo service whose clients move to another server without
// noticing. Run it on two hosts (as root, or with CAP_NET_ADMIN and
// CAP_NET_RAW) on one Ethernet segment, each with its own Addr; the
// one that starts with the service address (VIP) takes it. Clients talk to
// VIP:7007. TestExampleHandsOff runs exactly this between namespaces.
func Example() {
	ctx := context.Background()
	key, err := wire.LoadKeyFile("/etc/sockshift/key") // the same on both hosts
	if err != nil {
		log.Print(err)
		return
	}
	n, err := runLineServer(ctx, handoff.Config{
		Name: "a", Addr: netip.MustParseAddr("192.0.2.1"), Interface: "eth0",
		VIP: netip.MustParseAddr("192.0.2.100"), Key: key,
	})
	if err != nil {
		log.Print(err)
		return
	}
	defer n.Close()
	if err := n.TakeVIP(); err != nil { // on the first server only
		log.Print(err)
		return
	}

	// Later: every client of the VIP moves to the server at 192.0.2.2.
	rep, err := n.HandOff(ctx, netip.MustParseAddr("192.0.2.2"), nil)
	if err != nil {
		log.Print(err) // an *handoff.Error: RolledBack says the clients stayed here
		return
	}
	fmt.Printf("%d connections moved to %s in %v\n", rep.Connections, rep.To, rep.Total)
}
