package echo

import (
	"bytes"
	"context"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// heapPeak samples the heap until stop is closed and returns the peak.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var peak uint64
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return out
}

func heapNow() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// A long stream with no structure at all (echo has no lines), 100 MB,
// comes back whole while the server's memory stays flat: a connection
// holds one read (16 KiB) of application state.
func TestHundredMegabytesStream(t *testing.T) {
	_, addr := listen(t)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	base := heapNow()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	const total = 100 << 20
	buf := bytes.Repeat([]byte("A"), 64<<10)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		for sent := 0; sent < total; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	n, err := io.CopyBuffer(io.Discard, io.LimitReader(c, total), make([]byte, 64<<10))
	close(stop)
	p := <-peak
	if err != nil || n != total {
		t.Fatalf("echoed %d of %d bytes: %v", n, total, err)
	}
	t.Logf("heap %d KiB before, peak %d KiB while 100 MB went through", base>>10, p>>10)
	if grew := int64(p) - int64(base); grew > 2<<20 {
		t.Errorf("the heap grew %d KiB with one stream", grew>>10)
	}
}

// A client that sends and never reads fills the kernels' queues; the
// server stops reading (it holds one read it cannot write back), so its
// state, and its snapshot, stay one read.
func TestNonReaderHoldsOneRead(t *testing.T) {
	s, addr := listen(t)
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := bytes.Repeat([]byte("A"), 64<<10)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		for {
			if _, err := c.Write(buf); err != nil {
				return // the queues are full
			}
		}
	}()
	<-wrote
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p, err := s.Quiesce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Settle(noneMoved)
	pcs := p.Conns()
	if len(pcs) != 1 {
		t.Fatalf("%d connections", len(pcs))
	}
	pending, in, _, err := decodeState(pcs[0].State)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) > bufSize {
		t.Errorf("%d bytes pending after %d read, want at most one read (%d)", len(pending), in, bufSize)
	}
	if err := s.CheckConn(pcs[0].State); err != nil {
		t.Errorf("CheckConn refuses its own snapshot: %v", err)
	}
	if s.CheckConn(append([]byte{stateVersion + 1}, pcs[0].State[1:]...)) == nil {
		t.Error("CheckConn takes a snapshot of an unknown version")
	}
}
