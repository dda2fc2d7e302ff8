//go:build !linux

package handoff

import "net"

func acceptQueued(*net.TCPListener) ([]*net.TCPConn, error) { return nil, nil }
