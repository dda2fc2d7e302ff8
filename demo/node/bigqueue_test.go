package node_test

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
)

// TestLargeQueuesMove hands off an echo connection whose server holds
// megabytes both ways (the client writes without reading: the server's
// send queue fills, then its receive queue), so the state travels by the
// path for large queues (encoded straight into its frame, restored from
// the frame's own bytes), and every byte comes back in order.
func TestLargeQueuesMove(t *testing.T) {
	env := labtest.Start(t, nil)
	c := env.DialVIP(7)
	defer c.Close()
	msg := make([]byte, 24<<20)
	for i := range msg {
		msg[i] = byte(i*131 + i>>13)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	written := make(chan error, 1)
	go func() { _, err := c.Write(msg); written <- err }()
	time.Sleep(500 * time.Millisecond) // the queues fill; the write blocks

	res := env.HandOff("a", "b")
	if !res.OK {
		t.Fatalf("hand-off: %s", res.Error)
	}
	if len(res.Moved) != 1 {
		t.Fatalf("hand-off reported %d moved connections, want 1", len(res.Moved))
	}
	b := res.Moved[0].Before
	// 256 KB is where the source takes that path (handoff's bigState); how
	// much more queues up depends on the buffer sizes autotuning chose.
	if q := b.RecvQueue + b.Unacked + b.Unsent; q < 256<<10 {
		t.Fatalf("only %d bytes queued at the freeze (receive %d, unacked %d, unsent %d): not the large-queue path", q, b.RecvQueue, b.Unacked, b.Unsent)
	}
	t.Logf("moved %d bytes queued (receive %d, unacked %d, unsent %d) in %v", b.RecvQueue+b.Unacked+b.Unsent,
		b.RecvQueue, b.Unacked, b.Unsent, time.Duration(res.TotalUS)*time.Microsecond)

	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if err := <-written; err != nil {
		t.Fatalf("writing: %v", err)
	}
	if !bytes.Equal(got, msg) {
		i := 0
		for got[i] == msg[i] {
			i++
		}
		t.Fatalf("echo differs from byte %d of %d", i, len(msg))
	}
}
