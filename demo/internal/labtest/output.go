package labtest

import (
	"bytes"
	"sync"
)

// Output collects what processes write (servers' logs, a command's
// output), safe to read while they write. The zero value is ready.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
