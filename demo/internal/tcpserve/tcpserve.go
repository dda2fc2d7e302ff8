// Package tcpserve is the accept loop the demo's services share.
package tcpserve

import (
	"errors"
	"fmt"
	"net"
)

// Serve accepts TCP connections on ln and hands each to handle, until ln
// is closed (then it returns nil). Temporary accept errors are retried;
// others end it, wrapped with the service's name.
func Serve(name string, ln net.Listener, handle func(*net.TCPConn)) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("%s: accept: %w", name, err)
		}
		tc, ok := c.(*net.TCPConn)
		if !ok {
			c.Close()
			continue
		}
		handle(tc)
	}
}
