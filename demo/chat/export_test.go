package chat

import "net"

// SetAddrGone replaces how s tells that an address left the host: a test
// whose sockets live in another network namespace than its threads asks
// there.
func SetAddrGone(s *Server, gone func(net.Addr) bool) { s.addrGone = gone }

// AddrGone is the check a server makes by default, in the calling
// thread's network namespace.
var AddrGone = addrGone
