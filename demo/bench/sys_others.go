//go:build !linux

package bench

import (
	"errors"
	"fmt"
	"runtime"
)

func errNotLinux() error { return fmt.Errorf("bench: on %s: %w", runtime.GOOS, errors.ErrUnsupported) }

func nofile() (int, error) { return 0, errNotLinux() }

func uname() string { return runtime.GOOS + " " + runtime.GOARCH }
