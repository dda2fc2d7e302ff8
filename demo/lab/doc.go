// Package lab builds the single-host lab: network namespaces stand in for
// the hosts of one Ethernet segment.
//
//	P-client            P-a               P-b
//	eth0 192.0.2.10     eth0 192.0.2.1    eth0 192.0.2.2
//	  │                   │                 │      veth pairs
//	client                a                 b      ports of br0,
//	  └──────────────── br0 ────────────────┘      a bridge (STP off) in P-sw
//
// P is the prefix (default "ss"), so several labs can run side by side.
// The bridge lives in a namespace of its own and each veth pair is created
// directly inside the namespaces (ip -n P-sw link add a type veth peer name
// eth0 netns P-a), so nothing ever appears in, or changes, the host's own
// network. IPv6 is disabled in the lab's namespaces so that captures show
// only the lab's IPv4 and ARP traffic. Each host's namespace also sets
// the IPv4 settings the lessons rely on (forwarding off, ARP behaviour,
// neighbour timers: see Settings) instead of inheriting the host's.
//
// The lab does not assign the VIP: the server that holds it does.
// The lab is built with the ip command (iproute2) and needs root.
//
// Typical usage:
//
//	if err := lab.CheckPrerequisites(); err != nil { ... }
//	l, err := lab.Up(ctx, lab.DefaultPrefix)
//	...
//	defer lab.Down(context.WithoutCancel(ctx), l.Prefix)
package lab
