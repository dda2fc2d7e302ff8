// Package console is `sockshift console`: the demo's web console (package
// web) driving servers that run elsewhere, for the VM lab. Where the
// one-host demo (package appliance) starts the lab and its servers itself
// and reaches them through Unix sockets, the console only talks to
// `sockshift node` processes that already run, over their TCP control API
// (node.Client, authenticated with the control token derived from the
// lab's key). It runs on the client machine, so it also shows that
// machine's ARP entry for the VIP, the fact that decides where the client's
// packets go.
//
// Its Lab offers the same hand-off, step mode and break-it toggles as the
// one-host demo; it has no built-in demo client and no capture (on real
// machines, run `sockshift client` and tcpdump yourself).
//
// Typical usage:
//
//	sockshift console --config /etc/sockshift/console.conf
//
// with a config file such as
//
//	listen     = 0.0.0.0:8080
//	token-file = /etc/sockshift/console-token
//	nodes      = a=192.168.56.11:7071,b=192.168.56.12:7071
//	vip        = 192.168.56.100
//	key-file   = /etc/sockshift/key
//	iface      = eth1
package console
