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
//	release the VIP (packets now dropped, never answered with RST,
//	and kept by the catcher)
//	dump ─────────── Service, Conns… ──────▶ restore (still frozen), take the VIP
//	decide ◀────────── Restored ───────────
//	is the channel still open? commit ─────▶ announce (gratuitous ARP),
//	close frozen sockets (silent)            repair off, services adopt
//	forward caught packets ◀────── Resumed ─
//
// The target announces the VIP only after the decision: a target that
// died before it must not leave the clients pointed at a host whose kernel
// would answer them with RSTs. In step mode, where a person holds the
// decision, it takes the address only then too; its sockets are rebuilt
// transparent (IP_TRANSPARENT), so they need no local address until then.
//
// Until the source sends Commit, any failure rolls back: the target
// discards what it rebuilt; the source takes the VIP
// back, announces it, thaws its sockets and its services resume. After
// Commit, only forward. Every wait has a deadline.
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
//   - a connection that was closing when frozen is closed.
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
// which parks it at a clean point and later says whether it moved.
//
// Tests, a class and a lab reach into a hand-off only through a Hook:
// pacing it step by step (Options.Paced), failing it at a step, leaving a
// step out on purpose.
package handoff
