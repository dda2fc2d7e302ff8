// Package capture records what the client of the lab sees on its wire, so
// a hand-off can be shown and downloaded afterwards: a packet socket
// (AF_PACKET, ETH_P_ALL, so frames the client sends are seen too) in the
// client's network namespace keeps its recent ARP and TCP frames in a ring;
// a window around a hand-off is cut from the ring, written as pcap for
// Wireshark, and drawn as a sequence diagram of one connection: its last
// segments to the old server, the gratuitous ARP, its first segments to
// the new one, sequence numbers continuing.
//
// The equivalent command is `ip netns exec <client ns> tcpdump -i eth0 -w
// latest.pcap 'arp or tcp'`, kept running and cut afterwards.
//
// Typical usage:
//
//	ring := capture.NewRing(nil)
//	sn, err := capture.Sniff("ss-client", "eth0", ring, nil)
//	if err != nil { ... }
//	defer sn.Close()
//	// ... a hand-off from start to end ...
//	frames := ring.Window(start.Add(-200*time.Millisecond), end.Add(300*time.Millisecond))
//	err = capture.WritePCAP(w, frames)
//	svg := capture.BuildSequence(frames, cfg).SVG()
package capture
