//go:build !linux

package fdtable

import (
	"errors"
	"fmt"
	"runtime"
)

var errUnsupported = fmt.Errorf("fdtable: on %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Next is not implemented here: the lab runs on Linux only.
func Next() (int, error) { return 0, errUnsupported }

// Reserve does nothing here: only Linux's table growth is known to stall.
func Reserve(n int) error { return nil }
