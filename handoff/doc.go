// Package handoff moves live TCP connections, with their application state,
// from this host to a peer while the clients keep talking.
//
// The kernel keeps doing TCP; handoff only freezes sockets (TCP repair
// mode), copies their state and rebuilds them on the peer, and moves the
// service address (the VIP) with them. A hand-off runs between a source and
// a target Node over an authenticated channel (package wire):
//
//	source                                   target
//	prepare, arm the catcher ─── Prepare ──▶ room for the sockets, ready
//	quiesce services, freeze sockets
//	journal "released", release the addresses (packets now dropped,
//	never answered with RST, and kept by the catcher)
//	dump ─────────── Service, Conns… ──────▶ restore, transparent and frozen;
//	                                          no address taken
//	decide ◀────────── Restored ───────────
//	journal "commit", commit ──────────────▶ journal "committed", take the
//	                                          addresses, announce (gratuitous
//	                                          ARP), repair off, services adopt
//	close frozen sockets (silent) ◀─ Resumed ─ journal "resumed"
//	forward caught packets
//
// The target takes an address only after the decision, just before it
// announces it: a target that died before then leaves nothing behind (its
// kernel would answer the clients' ARP, then their packets with RSTs).
//
// Until the source sends Commit, any failure rolls back: the target
// discards what it rebuilt; the source takes the addresses back,
// announces them, thaws its sockets and its services resume. After
// Commit, only forward. Every wait has a deadline. A paced hand-off
// (Options.Paced, for teaching) is the same hand-off, waiting at Hook.At.
//
// # What happens when a process dies
//
// Each side writes a hand-off down (Config.StateDir) before each step it
// cannot undo: the source before it releases an address ("released") and
// before it sends the decision ("commit"); the target before it takes an
// address ("committed") and once its sockets serve ("resumed"). A node
// that starts calls Recover, which settles what its journal left open with
// the peer, on a channel of its own (Settle). The rules:
//
//   - An address is added by the target only after it wrote "committed",
//     which it does only on the source's Commit (on the channel, or in a
//     Settle), which the source sends only after it wrote "commit".
//   - The source adds an address back only when the commit was never sent
//     (rollback; its journal says so), or when the target said it holds
//     nothing of the hand-off (it discarded it, or it died before its
//     sockets served and removed the address again before answering), or
//     when no process listens on the target's channel and no host answers
//     ARP for the address (the target is dead and never took it).
//   - A target that restarts with "committed" but not "resumed" removes the
//     addresses before it serves, and answers the source "lost".
//
// So an address is on the source, or on the target, or, between the
// release and the commit (and while a dead target's restart is awaited),
// on neither; never on both.
//
// Who keeps the connections, by the step at which a process dies:
//
//	dies     at                                   connections          address ends on
//	source   quiesce, freeze, release             die with it          the source
//	source   dump, transfer (not yet rebuilt)     die with it          the source (Recover)
//	source   restore, announce (rebuilt there)    live on the target   the target: the restarted
//	                                                                   source says commit; the
//	                                                                   target waits Config.Grace
//	source   resume (after the commit)            live on the target   the target
//	target   quiesce … announce (before commit)   stay on the source   the source (rollback)
//	target   after the commit, before serving     stay on the source   the source: its frozen
//	                                                                   copies are exact; it takes
//	                                                                   the addresses back once the
//	                                                                   target says "lost"
//	target   resume (serving)                     die with it          the target
//
// A connection dies only with the one process that held it. Without a
// StateDir a node keeps no journal, and a source killed between the
// release and the commit leaves its addresses on no server.
//
// Applications take part through the Service interface: they stop their
// connections at a clean point, snapshot their state, and adopt restored
// connections on the other side.
//
// # Which connections move
//
// Each service has a service address (Config.VIP, or its own in
// Config.ServiceAddrs), and a hand-off moves addresses: every service
// whose address this node holds, or those named in Options.Services. A
// connection moves with its service's address, and only then:
//
//   - a connection to another address (a server's own: a monitoring
//     probe, an operator's session) stays here and is served on;
//   - a connection the service keeps (PausedConn.Stay), or that the target
//     cannot rebuild, keeps its whole address here, since no connection
//     can outlive its address: its service stays, the others move;
//   - a connection that was closing when frozen is closed;
//   - a connection the kernel accepted during the hand-off, through a
//     Pauser's Listener, moves (Adopted.New) if it is to the address that
//     moves.
//
// Of the client frames the source catches during the switch, the target
// gets those of the connections that moved and the SYNs that came after
// the release, nothing else: a frame of a connection that was closing on
// the source would draw a reset from the target.
//
// The service learns the outcome once, in Paused.Settle: forget what
// moved, resume the rest. Report.Stayed says what stayed and why.
//
// Typical usage, on each server (Example has a whole service):
//
//	n, err := handoff.NewNode(handoff.Config{Name: "a", Addr: addr, Interface: "eth0",
//		VIP: vip, Key: key, Services: []handoff.Service{svc}})
//	go n.Serve(ctx)                          // accept hand-offs from peers
//	report, err := n.HandOff(ctx, peer, nil) // or hand ours to a peer
//
// A server with one goroutine per connection implements Quiesce with a
// Pauser: each goroutine passes its Read and Write errors to its Gate,
// which parks it at a clean point and later says whether it moved. It
// accepts through Pauser.Listen, so that a client connecting during a
// hand-off moves too (Adopted.New) instead of being served, cut off, on
// the source.
//
// Tests, a class and a lab reach into a hand-off only through a Hook:
// pacing it step by step (Options.Paced), failing it at a step, leaving a
// step out on purpose.
package handoff
