package handoff

import (
	"runtime"
	"sync"
)

// workers is how many goroutines share per-socket work: the syscalls are
// independent, and a hand-off of thousands wants every core.
func workers(n int) int {
	return max(1, min(n/64, runtime.NumCPU()*2, 8))
}

// forEach runs fn for 0..n-1 on workers(n) goroutines and waits.
func forEach(n int, fn func(i int)) {
	w := workers(n)
	if w == 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Interleaved shares: no channel per item.
			for i := k; i < n; i += w {
				fn(i)
			}
		}()
	}
	wg.Wait()
}
