package main

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestStreamVerifiesTheEcho(t *testing.T) {
	ln := listen(t)
	go serve(ln, 1<<20) // locked, as the probe's first run
	r, err := stream(ln.Addr().String(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.bytes < 1<<20 {
		t.Errorf("%d bytes in 300 ms over loopback", r.bytes)
	}
	if !strings.Contains(r.String(), "MB verified in 300ms") {
		t.Errorf("report %q", r)
	}
}

func TestStreamCatchesAWrongByte(t *testing.T) {
	ln := listen(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1000)
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		b[700]++ // byte 700 of the stream, corrupted
		c.Write(b)
		io.Copy(io.Discard, c)
	}()
	_, err := stream(ln.Addr().String(), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "byte 700 ") {
		t.Fatalf("got %v, want an error naming byte 700", err)
	}
}
