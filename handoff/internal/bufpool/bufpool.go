// Package bufpool recycles large byte buffers between hand-offs. A busy
// connection's queues are megabytes, and filling fresh memory costs
// several times the copy itself (the first touch of every page faults);
// a few buffers kept from the last hand-off make the next one cheaper.
// Small buffers are left to the garbage collector, and what is kept is
// bounded.
package bufpool

import (
	"slices"
	"sync"
)

const (
	// MinSize is the smallest buffer kept.
	MinSize = 256 << 10
	// maxKept and maxBytes bound what is kept.
	maxKept  = 8
	maxBytes = 256 << 20
)

var (
	mu    sync.Mutex
	free  [][]byte // by capacity, ascending
	total int
)

// Get returns a slice of length n: a kept buffer if one is large enough,
// else a new one. Its contents are undefined.
func Get(n int) []byte {
	if n >= MinSize {
		mu.Lock()
		for i, b := range free {
			if cap(b) >= n {
				free = slices.Delete(free, i, i+1)
				total -= cap(b)
				mu.Unlock()
				return b[:n]
			}
		}
		mu.Unlock()
	}
	return make([]byte, n)
}

// Put keeps b (all of its capacity) for a later Get. The caller must not
// use b afterwards. Buffers under MinSize are not kept; beyond the bounds
// the smallest kept ones are let go.
func Put(b []byte) {
	if cap(b) < MinSize {
		return
	}
	b = b[:cap(b)]
	mu.Lock()
	defer mu.Unlock()
	i, _ := slices.BinarySearchFunc(free, cap(b), func(x []byte, c int) int { return cap(x) - c })
	free = slices.Insert(free, i, b)
	total += cap(b)
	for len(free) > maxKept || total > maxBytes {
		total -= cap(free[0])
		free[0] = nil
		free = free[1:]
	}
}

// kept reports what is kept, for tests.
func kept() (n, bytes int) {
	mu.Lock()
	defer mu.Unlock()
	return len(free), total
}
