package nstest

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on an OS thread switched into namespace ns. Sockets that fn
// creates belong to ns for their whole life and may be used from any
// goroutine afterwards.
func Do(ns string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		// The thread is unlocked only once it is back in its own namespace;
		// otherwise it dies with this goroutine and is never reused.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- fmt.Errorf("nstest: current namespace: %w", err)
			return
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("nstest: namespace %s: %w", ns, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- fmt.Errorf("nstest: enter %s: %w", ns, err)
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
