// Package web is the console of the sockshift demo: an HTTP server with a
// JSON API to read the lab's state and start a hand-off, a live stream of
// Server-Sent Events, and one embedded page that draws the lab, a live
// graph of the demo client, the last hand-off (phases, client-visible gap,
// TCP state before and after, the client's packets around the switch) and
// a step mode for classes.
//
// The console knows nothing of TCP repair: everything it shows or does goes
// through the Lab interface, which the demo implements. Two optional
// interfaces add to it: a Classroom lab runs a hand-off one phase at a time
// and breaks it on purpose (step mode and the break-it toggles, for the lab
// only), and a Recorder lab keeps files about its latest hand-off (the
// client's capture as pcap, and a sequence diagram as SVG). The page shows
// what the lab offers (State.Features).
//
// API:
//
//	GET  /api/state                 State
//	POST /api/handoff               {"to":"b"} → Report when done (200, or 502 on failure);
//	                                {"to":"b","step":true,"break":{"skip_announce":true,"keep_vip":true}}
//	                                → 202 {"accepted":true,"step":StepState} at once in step mode
//	POST /api/step                  {"abort":false} → {"phase":"freeze","step":StepState|null}
//	GET  /api/handoffs/latest.pcap  the client's side of the latest hand-off
//	GET  /api/handoffs/latest.svg   its sequence diagram
//	GET  /api/events                Server-Sent Events
//
// Every live fact is pushed to browsers as an event; the console polls
// Lab.State only while at least one browser listens, and the demo pushes
// its own events with Publish, which never blocks: "client" (ClientStats),
// "sample" (Sample: round trips and throughput for the graph) and "chat"
// (ChatLine: a chat message seen passing, for a chat service to publish).
// A step-mode hand-off's report arrives as the "handoff" event when it
// completes.
//
// Security: the console is meant to listen on loopback. Bound elsewhere it
// needs a token, and every POST (hand-off and step) must then carry
// "Authorization: Bearer <token>". Without a token, POSTs are accepted only
// with a loopback Host header and no foreign Origin, so a web page the
// operator happens to visit cannot start a hand-off through the browser
// (CSRF, DNS rebinding). The page loads nothing from elsewhere: its script,
// style and pictures are embedded, and its Content-Security-Policy allows
// only this console.
//
// Typical usage:
//
//	srv, err := web.New(web.Config{Lab: lab, Listen: addr})
//	if err != nil { ... }
//	ln, err := net.Listen("tcp", addr)
//	if err != nil { ... }
//	go srv.Publish(web.Event{Type: "client", Data: stats}) // any time
//	err = srv.Serve(ctx, ln) // until ctx is done
//
// gin stays inside this package: callers see only net/http types.
package web
