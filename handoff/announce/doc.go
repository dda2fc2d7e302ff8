// Package announce tells the segment that the VIP has moved, with
// gratuitous ARP.
//
// After a hand-off the client (or its router) still maps the VIP to the old
// holder's MAC. An Announcer broadcasts, from a raw packet socket, an ARP
// request and an ARP reply whose sender and target IP are both the VIP and
// whose sender MAC is ours. Linux updates an existing neighbour entry at
// once on a gratuitous ARP of either kind (the reply counts as gratuitous
// only if its target MAC equals its sender MAC, so it carries ours); other
// stacks heed one kind or the other, so both are sent.
//
// The packet socket is opened once, by New, and kept: closing one takes
// about 17 ms, which must stay off the hand-off's critical path. An
// Announce is two sendto calls.
//
// Typical usage, inside the namespace that owns the interface:
//
//	a, err := announce.New("eth0")
//	...
//	defer a.Close()
//	err = a.Announce(vip) // right after the VIP is added here
package announce
