// Package chat is a small IRC server (a practical subset of RFC 1459/2812)
// whose live connections, with their state, can move to another host.
//
// All state sits behind one mutex: the shared part (registered nicks,
// channels, members, topics, the last lines of each channel) and each
// connection's part (registration progress, the bytes read but not yet
// handled, the bytes queued but not yet written). Each connection has a
// reader, which reads and handles whole lines one at a time, and a writer,
// which drains the connection's output queue. To pause a connection for a
// hand-off, the server sets a deadline in the past: a blocked Read or Write
// returns at once, and both goroutines park between lines, so what was read
// but not handled (a half line, or lines held back by the rate limit) and
// what was queued but not written stay in the connection's buffers. Those
// buffers are the connection's snapshot; the nicks and channels are the
// shared snapshot, taken once per hand-off.
//
// The target rebuilds the shared state first, then attaches each adopted
// connection to its nick, so the order in which connections arrive does not
// matter; a nick whose connection did not arrive quits, as if it had
// dropped.
//
// Every input is bounded: lines over 512 bytes get 417 and are dropped as
// they come (each 512 bytes of them costs a line of the rate, and past
// MaxLongLine the client goes), a client that sends faster than its rate
// is read more slowly, a client that keeps sending junk or stops reading
// (its output queue overflows) is disconnected with an ERROR, alone.
// Before a hand-off freezes anything, Quiesce decodes every snapshot as
// the target will: a client whose snapshot the target would refuse is
// dropped there, and a shared snapshot it would refuse fails the
// hand-off, so nothing is refused after the commit.
package chat
