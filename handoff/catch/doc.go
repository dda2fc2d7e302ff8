// Package catch keeps the client packets that reach the source host while
// its connections are between hosts, and delivers them to the target once
// the target's sockets are live, so that no client waits for a
// retransmission timeout (200 ms or more on Linux) because of a hand-off.
//
// From the moment the source removes the VIP until the client (or its
// router) heeds the target's gratuitous ARP, the client's frames still
// arrive at the source's MAC, and the source's IP layer drops them. A
// Catcher opens, before the freeze, an AF_PACKET socket on the source's
// interface that sees those frames before the IP layer does. A classic BPF
// program, attached before the socket is bound, passes only IPv4 TCP frames
// sent to our own MAC for the VIP (optionally only to some destination
// ports); frames sent to another MAC, including those the Catcher re-sends,
// never match. The socket is bound to IPv4 rather than to every protocol,
// and Linux shows transmitted frames only to the latter, so this host's own
// transmissions never reach it (PACKET_IGNORE_OUTGOING says so again, in
// case that ever changes). Frames are kept in memory in arrival order, up to a bound in
// bytes; beyond it they are dropped and counted.
//
// The source calls Mark at the freeze. Frames kept before it reached live
// sockets; DropEarly lets go of those the caller's state already holds, so
// that only what the dump lacks (out-of-order data) goes with the rest.
//
// When the target reports its sockets live, Forward re-sends the kept
// frames in order with the Ethernet destination rewritten to the target's
// MAC and the source to ours (so the segment's switches never learn the
// client's MAC on our port), then forwards stragglers as they arrive for a
// grace period, and closes. Most caught frames are the client's ACKs; they
// are forwarded too. Only (set before Forward) restricts what goes to what
// the target can own, given when each frame arrived (Released marks the
// source's release of the address).
//
// On veth (and any device with GSO or checksum offload) frames arrive as
// super-frames of up to 64 KB with unfinished checksums. The socket is set
// to PACKET_VNET_HDR, so each read returns a struct virtio_net_hdr in front
// of the frame, and each frame is re-sent with that header untouched: the
// kernel then finishes the segmentation and checksums on the way out.
//
// Closing a packet socket takes about 17 ms, so Forward and Stop return
// before the socket is closed; Done is closed once it is.
//
// Typical usage on the source, inside the namespace that owns the
// interface:
//
//	c, err := catch.Arm("eth0", vip, &catch.Config{Ports: []uint16{7}})
//	c.Mark()
//	... // freeze, release the VIP, dump, transfer
//	// on rollback:  c.Stop()
//	// once the target's sockets are live:
//	c.DropEarly(notDumped)
//	st, err := c.Forward(targetMAC)
package catch
