package nsexec

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into the named network
// namespace (ip netns exec, for one function). Sockets fn creates belong to
// that namespace for their whole life and may be used from any goroutine.
func Do(ns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		// The thread is unlocked only once it is back in its own namespace;
		// otherwise it dies with this goroutine and is never reused.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- fmt.Errorf("nsexec: current namespace: %w", err)
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("nsexec: namespace %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- fmt.Errorf("nsexec: enter namespace %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		done <- ferr
	}()
	return <-done
}
