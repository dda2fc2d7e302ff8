package appliance

import (
	"context"
	"errors"
	"fmt"
	"github.com/sockshift/sockshift/demo/internal/wait"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sockshift/sockshift/demo/labview"
	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff/nsexec"
	"github.com/sockshift/sockshift/web"
)

func (a *Appliance) stepping() *labview.StepRun {
	a.stepMu.Lock()
	defer a.stepMu.Unlock()
	return a.step
}

// HandOff implements web.Lab: the holder of the VIP hands every connection
// to the other server.
func (a *Appliance) HandOff(ctx context.Context, to string) (web.Report, error) {
	return a.HandOffWith(ctx, web.HandOffRequest{To: to})
}

// Step implements web.Classroom: it releases the phase the running
// step-mode hand-off waits for, or rolls it back.
func (a *Appliance) Step(ctx context.Context, abort bool) (string, error) {
	run := a.stepping()
	if run == nil {
		return "", errors.New("no hand-off is waiting for a step")
	}
	a.markStep()
	return a.cluster.Control(run.From).Step(ctx, abort)
}

// HandOffWith implements web.Classroom: one hand-off, in step mode or
// broken on purpose as req says, measured (the client-visible gap, the
// client's ARP entry before and after) and recorded (the client's packets
// around it). A broken hand-off is put right afterwards, so the demo runs
// on; the report's note says how.
func (a *Appliance) HandOffWith(ctx context.Context, req web.HandOffRequest) (web.Report, error) {
	st, err := a.State(ctx)
	if err != nil {
		return web.Report{Error: err.Error()}, err
	}
	to, sources, err := labview.PlanHandOff(st, req)
	if err != nil {
		return web.Report{To: to, Error: err.Error()}, err
	}
	from := sources[0].From
	if len(sources) > 1 && (req.Step || req.Break != nil) {
		err := fmt.Errorf("%w: the services are on different servers: step mode and break-it move from one server; move %s first", web.ErrBadRequest, strings.Join(sources[1].Services, ", "))
		return web.Report{From: from, To: to, Error: err.Error()}, err
	}
	brk := req.Break
	if brk != nil {
		// The target must already know the client's MAC: otherwise its own
		// ARP query for the client, sent from the VIP, announces the VIP
		// after all, and the skipped announce shows nothing.
		a.introduce(ctx, to)
	}
	nreq := node.HandoffRequest{To: to, Step: req.Step, Services: sources[0].Services}
	if brk != nil {
		nreq.KeepVIP = brk.KeepVIP
		if err := a.cluster.Control(to).Break(ctx, node.BreakRequest{SkipAnnounce: brk.SkipAnnounce}); err != nil {
			return web.Report{From: from, To: to, Error: err.Error()}, err
		}
	}
	if req.Step {
		a.stepMu.Lock()
		a.step = &labview.StepRun{From: from, To: to, Break: brk}
		a.stepMu.Unlock()
		a.startStepCapture(time.Now())
		a.pauseClients()
		defer a.resumeClients()
	}
	arpBefore, _ := a.clientARP(ctx)
	start := time.Now()
	res, err := a.cluster.Control(from).HandOffWith(ctx, nreq)
	var survivorNote string
	if err != nil && res.From == "" {
		// No answer at all: the source died mid-hand-off. What happened
		// is what the survivors hold once they have settled it.
		res, err, survivorNote = a.askSurvivor(ctx, from, to, sources[0].Services, err)
	}
	res, err = labview.HandOffRest(ctx, res, err, sources, a.cluster.Control)
	end := time.Now()
	if req.Step {
		a.stepMu.Lock()
		a.step = nil
		a.stepMu.Unlock()
	}
	if brk == nil {
		// The servers are free: the report below takes its time off the
		// switch. (A hand-off broken on purpose is put right first.)
		web.Switched(ctx)
	}
	if err == nil {
		a.noteHandOff(to, res)
	}
	done := end
	rep := labview.Report(from, to, req, res, start, done)
	if err == nil && !res.OK {
		err = errors.New(res.Error)
	}

	// Let the client's next round trips happen, so the gap, its ARP entry
	// and the capture show the hand-off's effect; a broken hand-off gets
	// the time to show what goes wrong, and is then put right.
	settle := captureAfter
	if err == nil && brk != nil {
		settle = a.cfg.BreakHold
	}
	wait.Sleep(ctx, settle)
	var putRight string
	if err == nil && brk != nil {
		putRight = a.undoBreak(ctx, from, to, brk)
		if !brk.KeepVIP {
			a.awaitReResolve(ctx, from, to, start, done, 5*time.Second)
		}
		end = time.Now()
		wait.Sleep(ctx, captureAfter)
	}
	if err != nil {
		// Nothing moved: the report must not say so.
		rep.Connections, rep.Moved = 0, nil
	}
	if err != nil && brk != nil && brk.KeepVIP && res.RolledBack {
		rep.Note = fmt.Sprintf("With the address kept, the client's segments still reached %s's frozen sockets and changed them while they were dumped; the hand-off noticed and rolled back, so the connections stay on %s. Releasing the address first is what keeps the sockets still.",
			serverName(from), serverName(from))
	}
	if a.probe != nil {
		// The round trips in flight during the hand-off, and those just
		// after it (the first to the new server).
		rep.GapUS = a.probe.gap(start, end.Add(captureAfter)).Microseconds()
	}
	rep.ARPBefore = arpBefore
	rep.ARPAfter, _ = a.clientARP(ctx)
	if a.sniffer != nil {
		rep.Capture = a.record(start, end, done)
		rep.Fate = a.fate(from, to, start, end, done)
	}
	if err == nil && brk != nil {
		rep.Note = noteFromFate(from, to, brk, rep.Fate, putRight)
	}
	if survivorNote != "" {
		rep.Note = strings.TrimSpace(survivorNote + " " + rep.Note)
	}
	if req.Step && !a.cfg.NoClient {
		fate := "stayed on " + serverName(from)
		if err == nil {
			fate = "moved with the hand-off"
		}
		rep.Note = strings.TrimSpace(rep.Note + " The built-in demo clients were paused for step mode (they give up after 10 s without an answer); the console's own ping client " + fate + ".")
	}
	if err != nil {
		if rep.Error == "" {
			rep.Error = err.Error()
		}
		if ns, serr := a.cluster.Control(from).State(ctx); serr == nil {
			rep.Remaining = labview.Connections(from, ns.Connections)
		}
	}
	return rep, err
}

// DefaultBreakHold is how long a broken hand-off is left broken: long
// enough for a class to run `ss -ti` and read the capture while the client
// stalls (`sockshift demo --break-hold`).
const DefaultBreakHold = 10 * time.Second

// undoBreak puts the lab right after a hand-off broken on purpose and says,
// for the report, what it did; what went wrong is read from the client's
// frames (noteFromFate).
func (a *Appliance) undoBreak(ctx context.Context, from, to string, brk *web.Break) string {
	A, B := serverName(from), serverName(to)
	switch {
	case brk.KeepVIP && brk.SkipAnnounce:
		// The client still sends to the source, which has the address but
		// no socket: its kernel resets the connections. The target keeps
		// sockets no client can reach any more: close them, or their
		// services keep them (a chat nick would collide later).
		_, err := a.cluster.Control(to).SetVIP(ctx, node.VIPRequest{Hold: false, CloseConnections: true})
		n, derr := a.dropOrphans(ctx, to)
		closed := ""
		if n > 0 {
			closed = fmt.Sprintf(" and closed the %d connections it still had on it, which no client could reach any more", n)
		}
		return fmt.Sprintf("Put right: %s dropped the address again%s%s%s; the demo clients reconnect to %s.",
			B, errNote(err), closed, errNote(derr), A)
	case brk.KeepVIP:
		// Both servers hold the address; the client follows the announce.
		_, err := a.cluster.Control(from).SetVIP(ctx, node.VIPRequest{Hold: false})
		return fmt.Sprintf("%s kept the address while %s announced it: two hosts answered for one address, and the next ARP query would have had two answers. Put right: %s dropped it%s.",
			A, B, A, errNote(err))
	case brk.SkipAnnounce:
		// The announce that was skipped brings the client over.
		_, err := a.cluster.Control(to).SetVIP(ctx, node.VIPRequest{Hold: true})
		return fmt.Sprintf("Put right after %v: %s sent the gratuitous ARP it had skipped%s.", a.cfg.BreakHold, B, errNote(err))
	}
	return ""
}

func errNote(err error) string {
	if err != nil {
		return " (which failed: " + err.Error() + ")"
	}
	return ""
}

// introduce makes a server learn the client's MAC, from its own address
// (never the VIP): a connection attempt to a closed port on the client is
// answered with a reset, after an ARP exchange.
func (a *Appliance) introduce(ctx context.Context, role string) {
	h, _ := a.cluster.Host(role)
	cl := a.cluster.Lab.Client.Addr.Addr()
	nsexec.Do(h.Namespace, func() error {
		d := net.Dialer{Timeout: time.Second, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(h.Addr.Addr(), 0))}
		c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(cl, 9).String())
		if err == nil {
			c.Close()
		}
		return nil
	})
}

// serverName is how the notes name a server: "server A".
func serverName(role string) string { return "server " + strings.ToUpper(role) }

// lastHandOff is what the latest hand-off did, for the connections list.
type lastHandOff struct {
	to       string
	services []string
	stayed   map[string]string // client address -> why it stayed
}

func (a *Appliance) noteHandOff(to string, res node.HandoffResult) {
	l := &lastHandOff{to: to, services: res.Services, stayed: map[string]string{}}
	for _, s := range res.Stayed {
		l.stayed[s.Client] = s.Reason
	}
	a.recMu.Lock()
	a.last = l
	a.recMu.Unlock()
}

// lastHandOffOf says what the latest hand-off did with a connection: it stayed
// (and why), or it moved (it is on the target, on its service's address).
func (a *Appliance) lastHandOffOf(c *web.Connection, addrs map[string]string) {
	a.recMu.Lock()
	l := a.last
	a.recMu.Unlock()
	if l == nil {
		return
	}
	if why, ok := l.stayed[c.Client]; ok {
		c.HandOff, c.Reason = "stayed", why
		return
	}
	host, _, _ := net.SplitHostPort(c.Local)
	if c.Node == l.to && slices.Contains(l.services, c.Service) && host == addrs[c.Service] {
		c.HandOff = "moved"
	}
}

// askSurvivor tells what a hand-off did whose source died before it
// answered: it waits (at most settleWithin) until each moving address is
// on exactly one server, then reads the facts from the servers. If the
// target holds them, the hand-off was committed and the target serves
// its connections: that is a hand-off that worked.
func (a *Appliance) askSurvivor(ctx context.Context, from, to string, services []string, cause error) (node.HandoffResult, error, string) {
	res := node.HandoffResult{From: from, To: to}
	deadline := time.Now().Add(settleWithin)
	for {
		var held map[string][]string // service -> servers holding its address
		conns := 0
		targetUp := false
		held = map[string][]string{}
		for _, role := range []string{from, to} {
			ns, err := a.cluster.Control(role).State(ctx)
			if err != nil {
				continue
			}
			for _, sv := range ns.Services {
				if sv.Holds && (len(services) == 0 || slices.Contains(services, sv.Name)) {
					held[sv.Name] = append(held[sv.Name], role)
				}
			}
			if role == to {
				targetUp = true
				for _, c := range ns.Connections {
					if len(services) == 0 || slices.Contains(services, c.Service) {
						conns++
					}
				}
			}
		}
		onTarget, settled := 0, targetUp && len(held) > 0
		for _, roles := range held {
			settled = settled && len(roles) == 1
			if len(roles) == 1 && roles[0] == to {
				onTarget++
			}
		}
		if settled && onTarget == len(held) {
			res.OK, res.Connections = true, conns
			for name := range held {
				res.Services = append(res.Services, name)
			}
			slices.Sort(res.Services)
			return res, nil, fmt.Sprintf("%s died before it answered (%v); the hand-off had been committed: %s holds the addresses and serves %d connections.",
				serverName(from), cause, serverName(to), conns)
		}
		if (settled && onTarget == 0) || time.Now().After(deadline) || ctx.Err() != nil {
			res.Error = fmt.Sprintf("%s died mid-hand-off (%v): the addresses are where its journal and %s settled them (%v); the connections it alone held died with it", serverName(from), cause, serverName(to), held)
			res.RolledBack = onTarget == 0
			return res, errors.New(res.Error), ""
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// settleWithin is how long the servers may take to settle a hand-off
// whose process died: the dead one is restarted and settles from its
// journal.
const settleWithin = 3 * time.Second
