// Package echo is the Echo Protocol (RFC 862) over TCP, able to hand its
// live connections to another host.
//
// Each connection is one goroutine that reads and writes back. To pause it
// for a hand-off, the server sets a deadline in the past: a blocked Read or
// Write returns at once, and whatever was read but not yet written back
// stays in the connection's pending buffer. That buffer and the byte
// counters are the connection's snapshot, so a hand-off loses no byte and
// never waits on a client that stopped reading.
package echo
