// Package node is the server agent: one process per server host that runs
// the services on the VIP, takes part in hand-offs over the channel (TCP
// 7070 on its own address), and answers its operator on a control socket.
//
// The control socket is HTTP with JSON on a Unix socket: a path in the
// file system reaches across network namespaces, so the demo in the host's
// namespace can drive nodes inside the lab's. On real hosts the same API can
// listen on TCP instead.
//
//	GET  /state    this node: address, MAC, its services and whether it holds each address, its connections
//	POST /handoff  {"to":"b"}: hand every service to that peer ({"services":["chat"]}: those alone)
//	POST /step     {} or {"abort":true}: release (or roll back) the phase a step-mode hand-off waits for
//	POST /break    {"skip_announce":true}: arm this node's next incoming hand-off to send no ARP
//	POST /vip      {"hold":false,"close_connections":true}: plain fail-over, no hand-off
//
// Every POST reads its body alike (control.go): an empty body is the zero
// request ({}), bad JSON is 400. Refusals answer {"error": ...}; a failed
// hand-off answers its result with ok false. The services a node runs
// come from one table, services.go.
package node
