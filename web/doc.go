// Package web is the console of the sockshift demo: an HTTP server with a
// JSON API to read the lab's state and start a hand-off, a live stream of
// Server-Sent Events, and one embedded page with a "Hand off" button.
//
// The console knows nothing of TCP repair: everything it shows or does goes
// through the Lab interface, which the demo implements. Every live fact is
// pushed to browsers as an event; the console polls Lab.State only while at
// least one browser listens, and the demo can push its own events (the
// built-in client's statistics) with Publish, which never blocks.
//
// Security: the console is meant to listen on loopback. Bound elsewhere it
// needs a token, and every POST must then carry "Authorization: Bearer
// <token>". Without a token, POSTs are accepted only with a loopback Host
// header and no foreign Origin, so a web page the operator happens to visit
// cannot start a hand-off through the browser (CSRF, DNS rebinding).
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
