//go:build !linux

package handoff

import "net"

// peerGone cannot look without reading outside Linux; the commit then
// relies on the channel's errors alone.
func peerGone(net.Conn) error { return nil }
