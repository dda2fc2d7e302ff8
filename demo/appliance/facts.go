package appliance

import (
	"bytes"
	"context"
	"fmt"
	"github.com/sockshift/sockshift/demo/internal/wait"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/sockshift/sockshift/demo/capture"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/web"
)

// stallAt is the wait for an answer that counts as a stall: well above a
// delayed ACK, below the 200 ms of a retransmission timeout.
const stallAt = 100 * time.Millisecond

// macs are the servers' MACs, to tell who sent or was sent a frame.
type macs struct{ source, target net.HardwareAddr }

// readFate reads, from the client's frames of a hand-off's window, what
// happened to each of its connections to the service addresses vips. switchAt is when the hand-off
// ended: after it, a connection is answered by the target (moved), by the
// source (stayed), by nobody (silent), or reset.
func readFate(frames []capture.Frame, vips []netip.Addr, m macs, roleOf func(net.HardwareAddr) string, switchAt time.Time) *web.Fate {
	type conn struct {
		reset        bool
		lastAnswerBy net.HardwareAddr // after the switch: who sent the last frame
		waitingSince time.Time        // the client's oldest data not yet acknowledged was sent then
		waitingEnd   uint32           // ... and ends before this sequence number
		stalled      bool
	}
	f := &web.Fate{ReResolvedMS: -1, AnnouncedMS: -1}
	conns := map[netip.AddrPort]*conn{}
	var worst time.Duration
	var end time.Time
	since := func(t time.Time) int64 { return max(0, t.Sub(switchAt).Milliseconds()) }
	for _, fr := range frames {
		p, err := capture.Decode(fr)
		if err != nil {
			continue
		}
		end = p.Time
		if p.ARP != nil {
			if p.ARP.Gratuitous() && slices.Contains(vips, p.ARP.SenderIP) && f.AnnouncedMS < 0 && bytes.Equal(p.ARP.SenderMAC, m.target) {
				f.AnnouncedMS = since(p.Time)
			}
			continue
		}
		t := p.TCP
		fromClient := slices.Contains(vips, t.Dst.Addr())
		client := t.Src
		if !fromClient {
			if !slices.Contains(vips, t.Src.Addr()) {
				continue
			}
			client = t.Dst
		}
		c := conns[client]
		if c == nil {
			c = &conn{}
			conns[client] = c
		}
		after := !p.Time.Before(switchAt)
		if t.Flags&capture.RST != 0 {
			if !c.reset && !fromClient && f.ResetBy == "" {
				f.ResetBy = roleOf(p.Src)
			}
			c.reset = true
			continue
		}
		if fromClient {
			if after && bytes.Equal(p.Dst, m.source) {
				f.ToSource++
			}
			if f.ReResolvedMS < 0 && bytes.Equal(p.Dst, m.target) {
				f.ReResolvedMS = since(p.Time)
			}
			if (t.Payload > 0 || t.Flags&capture.FIN != 0) && c.waitingSince.IsZero() {
				c.waitingSince, c.waitingEnd = p.Time, t.Seq+uint32(t.Payload)
			}
			continue
		}
		if after {
			c.lastAnswerBy = p.Src
		}
		// Answered: the VIP acknowledged the data the client waited on (a
		// window probe or a retransmission of the server's own is not an
		// answer). Echo answers with data: a frozen source's kernel still
		// acknowledges until the address leaves it, while the echo waits
		// for the resume, and the wait must read as long as the client's.
		echoed := t.Payload > 0 || t.Src.Port() != echoPort
		if !c.waitingSince.IsZero() && echoed && t.Flags&capture.ACK != 0 && int32(t.Ack-c.waitingEnd) >= 0 {
			if w := p.Time.Sub(c.waitingSince); w >= stallAt {
				c.stalled = true
				worst = max(worst, w)
			}
			c.waitingSince = time.Time{}
			if after && f.ToSource > 0 && f.ReResolvedMS < 0 {
				f.ToSourceAnswered++
			}
		}
	}
	for _, c := range conns {
		if !c.waitingSince.IsZero() {
			if w := end.Sub(c.waitingSince); w >= stallAt {
				c.stalled = true
				worst = max(worst, w)
			}
		}
		f.Seen++
		switch {
		case c.reset:
			f.Reset++
		case bytes.Equal(c.lastAnswerBy, m.target):
			f.Moved++
		case bytes.Equal(c.lastAnswerBy, m.source):
			f.Stayed++
		default:
			f.Silent++
		}
		if c.stalled {
			f.Stalled++
		}
	}
	f.WorstStallMS = worst.Milliseconds()
	return f
}

// fate reads the fate of the client's connections over [start, end] from
// the capture ring (every frame, not the diagram's cut).
func (a *Appliance) fate(from, to string, start, end, switchAt time.Time) *web.Fate {
	if a.sniffer == nil {
		return nil
	}
	src, _ := a.cluster.Host(from)
	dst, _ := a.cluster.Host(to)
	roleOf := func(mac net.HardwareAddr) string {
		for _, h := range a.cluster.Lab.Servers {
			if bytes.Equal(mac, h.MAC) {
				return h.Role
			}
		}
		return ""
	}
	frames, _ := a.frames(start.Add(-captureBefore), end.Add(captureAfter))
	return readFate(frames, serviceAddrs, macs{source: src.MAC, target: dst.MAC}, roleOf, switchAt)
}

// awaitReResolve waits, up to limit, until the client sends to the
// target's MAC: after a late announce the client's next segment waits for
// its retransmission timer, which has backed off to a second or more, and
// the report should show it arriving.
func (a *Appliance) awaitReResolve(ctx context.Context, from, to string, start, switchAt time.Time, limit time.Duration) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline) && ctx.Err() == nil; {
		if f := a.fate(from, to, start, time.Now(), switchAt); f == nil || f.ReResolvedMS >= 0 {
			return
		}
		wait.Sleep(ctx, 100*time.Millisecond)
	}
}

// noteFromFate says, for a hand-off broken on purpose, what the client's
// frames show happened, then what the console did to put the lab right.
func noteFromFate(from, to string, brk *web.Break, f *web.Fate, putRight string) string {
	A, B := serverName(from), serverName(to)
	if f == nil {
		return "No capture of the client's packets, so what happened is not known. " + putRight
	}
	var b strings.Builder
	switch {
	case f.Reset > 0:
		by := "the client"
		if f.ResetBy != "" {
			by = serverName(f.ResetBy) + "'s kernel"
		}
		fmt.Fprintf(&b, "%d of the client's %d connections were reset (RST) by %s, so they were lost", f.Reset, f.Seen, by)
		if f.ResetBy == from {
			fmt.Fprintf(&b, ": %s, holding the address but no longer the sockets, answered the client's next segments with resets", A)
		}
		b.WriteString(". ")
	case brk.SkipAnnounce && f.ToSource > 0 && f.Stalled > 0:
		fmt.Fprintf(&b, "Without the announce the client kept sending to %s's MAC (%d segments, %d answered), and its connections stalled for up to %s. ",
			A, f.ToSource, f.ToSourceAnswered, msAsText(f.WorstStallMS))
	case brk.SkipAnnounce && f.ToSource > 0:
		fmt.Fprintf(&b, "Without the announce the client kept sending to %s's MAC (%d segments), yet %d answers came back and no connection stalled (worst wait %s): something carried the segments from %s to %s (is IPv4 forwarding on in %s's namespace?). ",
			A, f.ToSource, f.ToSourceAnswered, msAsText(f.WorstStallMS), A, B, A)
	case brk.SkipAnnounce:
		b.WriteString("Without the announce the client still sent nothing to the old server's MAC: it had asked again on its own. ")
	}
	if f.Reset == 0 {
		switch {
		case f.ReResolvedMS > 0:
			fmt.Fprintf(&b, "The client's segments went to %s's MAC from %s after the hand-off", B, msAsText(f.ReResolvedMS))
			if f.AnnouncedMS >= 0 && f.AnnouncedMS <= f.ReResolvedMS {
				fmt.Fprintf(&b, " (a gratuitous ARP at %s had changed its neighbour entry", msAsText(f.AnnouncedMS))
				if f.Stalled > 0 {
					b.WriteString("; its next segment waited for its retransmission timer")
				}
				b.WriteString(")")
			}
			b.WriteString(". ")
		case f.ReResolvedMS < 0:
			fmt.Fprintf(&b, "The client never sent to %s's MAC while the capture ran. ", B)
		}
		fmt.Fprintf(&b, "Afterwards %d connections were answered by %s, %d by %s, %d not at all. ", f.Moved, B, f.Stayed, A, f.Silent)
	}
	return strings.TrimSpace(b.String() + putRight)
}

// msAsText formats milliseconds for a note ("40 ms", "1.25 s").
func msAsText(ms int64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.2f s", float64(ms)/1000)
	}
	return fmt.Sprintf("%d ms", ms)
}

// dropOrphans closes the connections on service addresses that server
// role still has although it no longer holds the address: no client can
// reach them, yet their services keep them, and their state (a chat nick)
// would collide with the client's new connections on a later hand-off. It
// returns how many it closed. Equivalent, per such address, to
// `ip netns exec NS ss -K state established src ADDR`.
func (a *Appliance) dropOrphans(ctx context.Context, role string) (int, error) {
	h, _ := a.cluster.Host(role)
	st, err := a.cluster.Control(role).State(ctx)
	if err != nil {
		return 0, err
	}
	closed := 0
	for _, sv := range st.Services {
		addr, err := netip.ParseAddr(sv.Address)
		if err != nil || sv.Holds {
			continue
		}
		peers, err := establishedPeers(ctx, h.Namespace, addr)
		if err != nil {
			return closed, err
		}
		if len(peers) == 0 {
			continue // and look at the next service's address
		}
		out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.Namespace, "ss", "-K", "-tn",
			"state", "established", "src", addr.String()).CombinedOutput()
		if err != nil {
			return closed, fmt.Errorf("ss -K in %s: %v: %s", h.Namespace, err, bytes.TrimSpace(out))
		}
		left, err := establishedPeers(ctx, h.Namespace, addr)
		closed += len(peers) - len(left)
		if err != nil {
			return closed, err
		}
	}
	return closed, nil
}

// establishedPeers lists, in namespace ns, the remote ends of established
// TCP connections from vip.
func establishedPeers(ctx context.Context, ns string, vip netip.Addr) ([]netip.AddrPort, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ss", "-Htn", "state", "established", "src", vip.String()).Output()
	if err != nil {
		return nil, fmt.Errorf("ss in %s: %w", ns, err)
	}
	var peers []netip.AddrPort
	for line := range strings.Lines(string(out)) {
		// Recv-Q Send-Q Local Peer
		if f := strings.Fields(line); len(f) >= 4 {
			if ap, err := netip.ParseAddrPort(f[3]); err == nil {
				peers = append(peers, ap)
			}
		}
	}
	return peers, nil
}

// serviceAddrs are the lab's service addresses: echo's (the VIP), chat's,
// and those of the services a node runs only when asked.
var serviceAddrs = node.ServiceAddrs(lab.VIP)

// echoPort is the echo service's port (RFC 862), whose every byte is
// answered with the same byte.
const echoPort = 7
