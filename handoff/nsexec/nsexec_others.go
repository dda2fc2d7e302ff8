//go:build !linux

package nsexec

import (
	"errors"
	"fmt"
	"runtime"
)

// Do is not available outside Linux.
func Do(ns string, fn func() error) error {
	return fmt.Errorf("nsexec: network namespaces on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
