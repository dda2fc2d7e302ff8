//go:build !linux

package announce

import (
	"errors"
	"fmt"
	"runtime"
)

// New is not implemented outside Linux: it needs an AF_PACKET socket.
func New(ifname string) (*Announcer, error) {
	return nil, fmt.Errorf("announce: open %s on %s: %w", ifname, runtime.GOOS, errors.ErrUnsupported)
}
