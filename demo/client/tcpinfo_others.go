//go:build !linux

package client

import "net"

// retransmits is not available outside Linux.
func retransmits(net.Conn) (retrans, rtos uint32) { return 0, 0 }
