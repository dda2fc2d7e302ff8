//go:build !linux

package client

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// Retransmits needs Linux's TCP_INFO.
func Retransmits(net.Conn) (retrans, rtos uint32, err error) {
	return 0, 0, fmt.Errorf("client: retransmissions on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
