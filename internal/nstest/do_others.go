//go:build !linux

package nstest

import (
	"fmt"
	"runtime"
)

// Do is not available outside Linux.
func Do(ns string, fn func() error) error {
	return fmt.Errorf("nstest: network namespaces are not implemented on %s", runtime.GOOS)
}
