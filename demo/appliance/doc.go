// Package appliance runs the whole demo on one host: the lab's namespaces,
// a server process in each server namespace, the built-in demo clients in
// the client namespace, and the web console in the host's own namespace,
// which drives the servers through their control sockets. On SIGINT or
// SIGTERM it removes everything it made.
//
// Besides the demo clients (processes that verify every byte), the
// appliance pings the echo service itself, from the client's namespace, to
// time each round trip: that feeds the console's live graph and gives each
// hand-off its client-visible gap (the longest round trip in flight during
// the switch or just after it). A packet socket in the client's namespace
// keeps the client's recent ARP and TCP frames, from which each hand-off
// gets its capture (pcap) and sequence diagram (package capture).
//
// For classes, a hand-off can run one phase at a time and be broken on
// purpose (no announce; address kept on the source). A broken hand-off is
// left broken for Config.BreakHold (10 s), so the stall or the reset is seen and
// captured, then put right (the missing announce sent, or the extra
// address dropped), and the report says what happened.
package appliance
