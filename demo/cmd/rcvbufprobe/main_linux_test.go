package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/client"
)

// TestLockedEchoCarriesAStream: the probe's server, its buffers locked,
// echoes a verified full-speed stream.
func TestLockedEchoCarriesAStream(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serve(ln, 1<<20)
	st, err := client.Run(context.Background(), client.Config{
		Addr: ln.Addr().String(), Mode: client.Stream, Duration: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Bytes < 1<<20 {
		t.Errorf("%d bytes verified in 300 ms over loopback", st.Bytes)
	}
}
