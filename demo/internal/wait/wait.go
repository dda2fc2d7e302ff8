// Package wait has the demo's one way to pause for a while unless a
// context ends first.
package wait

import (
	"context"
	"time"
)

// Sleep waits d or until ctx is done, and reports whether it waited all
// of d.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
