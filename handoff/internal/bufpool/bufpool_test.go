package bufpool

import "testing"

func reset() {
	mu.Lock()
	free, total = nil, 0
	mu.Unlock()
}

func TestGetPut(t *testing.T) {
	reset()
	a := Get(MinSize + 100)
	if len(a) != MinSize+100 {
		t.Fatalf("len %d", len(a))
	}
	Put(a)
	if n, _ := kept(); n != 1 {
		t.Fatalf("%d kept after Put, want 1", n)
	}
	// A request it fits reuses it, a larger one does not.
	if b := Get(MinSize * 2); &b[0] == &a[0] {
		t.Fatal("a buffer too small was handed out")
	}
	b := Get(MinSize)
	if &b[0] != &a[0] || len(b) != MinSize {
		t.Fatal("the kept buffer was not reused")
	}
	if n, _ := kept(); n != 0 {
		t.Fatal("a buffer handed out is still kept")
	}
	// Small buffers are not kept, nor served from the pool.
	Put(make([]byte, 100))
	if n, _ := kept(); n != 0 {
		t.Fatal("a small buffer was kept")
	}
}

func TestBounds(t *testing.T) {
	reset()
	for i := 0; i < maxKept+5; i++ {
		Put(make([]byte, MinSize*(i+1)))
	}
	n, bytes := kept()
	if n > maxKept || bytes > maxBytes {
		t.Fatalf("%d buffers, %d bytes kept; bounds %d, %d", n, bytes, maxKept, maxBytes)
	}
	// The largest were kept, the smallest let go.
	if b := Get(MinSize * (maxKept + 5)); cap(b) != MinSize*(maxKept+5) {
		t.Fatal("the largest buffer was let go")
	}
	Put(make([]byte, maxBytes+1))
	if _, bytes := kept(); bytes > maxBytes {
		t.Fatalf("%d bytes kept over the bound", bytes)
	}
}
