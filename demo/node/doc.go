// Package node is the server agent: one process per server host that runs
// the services on the VIP, takes part in hand-offs over the channel (TCP
// 7070 on its own address), and answers its operator on a control socket.
//
// The control socket is HTTP with JSON on a Unix socket: a path in the
// file system reaches across network namespaces, so the demo in the host's
// namespace can drive nodes inside the lab's. On real hosts the same API can
// listen on TCP instead.
//
//	GET  /state    this node: address, MAC, whether it holds the VIP, its connections
//	POST /handoff  {"to":"b"}: hand every connection to that peer
//	POST /vip      {"hold":false,"close_connections":true}: plain fail-over, no hand-off
package node
