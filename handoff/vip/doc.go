// Package vip moves the service address (the VIP) on and off an interface.
//
// The VIP is an IPv4 host address (a /32) that follows the connections in a
// hand-off: the source deletes it before it dumps its sockets, so packets
// for it are dropped by the IP layer instead of answered with RST, and the
// target adds it before it restores them. Add and Remove are idempotent, so
// a rollback or a retry may repeat them safely.
//
// The functions talk rtnetlink in the calling thread's network namespace:
// run them from a process (or a locked OS thread) inside the namespace that
// owns the interface.
package vip
