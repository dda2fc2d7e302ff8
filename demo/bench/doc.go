// Package bench measures hand-offs the way a user would see them, in a lab
// of its own: a ping-pong client times every round trip while the servers
// hand its connection back and forth, and each hand-off is charged the
// longest stretch without a completed round trip that overlaps it; a
// full-speed stream checks every byte in order through hand-offs and
// watches its throughput; bulk runs hand off thousands of idle connections
// at once and check each still echoes; and the baseline does what a server
// without sockshift does (close every connection, move the address, let the
// client reconnect) and times the same client until it talks again.
//
// Typical usage:
//
//	res, err := bench.Run(ctx, bench.Config{Prefix: "ssb"}, os.Stderr)
//	if err != nil { ... }
//	res.WriteTable(os.Stdout)
package bench
