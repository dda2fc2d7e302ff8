//go:build !linux

package nsexec

import (
	"fmt"
	"runtime"
)

// InNamespace is not available outside Linux.
func Do(ns string, fn func() error) error {
	return fmt.Errorf("nsexec: network namespaces are not implemented on %s", runtime.GOOS)
}
