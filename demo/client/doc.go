// Package client is the verifying client: it talks to the echo service
// through hand-offs and proves nothing was lost.
//
// Stream mode writes a pseudo-random byte stream and checks that every byte
// comes back, in order; ping-pong mode sends numbered messages and records
// each round trip. Both count errors (a wrong byte, a reset, an end of
// stream) and the worst gap: the longest time the client waited for data
// it was owed, which is what a user feels during a hand-off.
package client
