package client

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestPatternIsStableAndSensitive(t *testing.T) {
	a := make([]byte, 4096)
	fill(a, 1, 0)
	// The same bytes whatever the chunking.
	b := make([]byte, 4096)
	for off := 0; off < len(b); off += 777 {
		end := min(off+777, len(b))
		fill(b[off:end], 1, uint64(off))
	}
	if !bytes.Equal(a, b) {
		t.Fatal("the pattern depends on how it is cut")
	}
	// A byte doubled or dropped shows.
	c := make([]byte, 4096)
	fill(c, 1, 1)
	if bytes.Equal(a[1:], c[:4095]) == false {
		t.Fatal("shifted pattern should match the original shifted")
	}
	same := 0
	for i := range a {
		if a[i] == c[i] {
			same++
		}
	}
	if same > len(a)/32 {
		t.Fatalf("a one-byte shift matches %d of %d bytes: too weak to catch a lost byte", same, len(a))
	}
	d := make([]byte, 4096)
	fill(d, 2, 0)
	if bytes.Equal(a, d) {
		t.Fatal("different streams share a pattern")
	}
}

// echoServer echoes, optionally corrupting one byte after n bytes.
func echoServer(t *testing.T, corruptAt int) string {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 32<<10)
				total := 0
				for {
					n, err := c.Read(buf)
					if corruptAt >= 0 && total <= corruptAt && corruptAt < total+n {
						buf[corruptAt-total] ^= 0xff
					}
					total += n
					if _, werr := c.Write(buf[:n]); werr != nil || err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestStreamAndPingVerify(t *testing.T) {
	addr := echoServer(t, -1)
	for _, mode := range []string{Stream, Ping} {
		st, err := Run(context.Background(), Config{Addr: addr, Mode: mode, Duration: 300 * time.Millisecond, Conns: 2, Interval: time.Millisecond})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if st.Bytes == 0 || st.Errors != 0 {
			t.Fatalf("%s: %+v", mode, st)
		}
		if mode == Ping && st.Pings == 0 {
			t.Fatalf("no pings: %+v", st)
		}
	}
}

func TestStreamCatchesACorruptByte(t *testing.T) {
	addr := echoServer(t, 100000)
	st, err := Run(context.Background(), Config{Addr: addr, Mode: Stream, Duration: 2 * time.Second})
	if err == nil || st.Errors == 0 || !strings.Contains(st.LastError, "wrong byte") {
		t.Fatalf("a corrupted byte went unnoticed: %+v, %v", st, err)
	}
}

func TestPingCatchesACorruptByte(t *testing.T) {
	addr := echoServer(t, 1000)
	st, err := Run(context.Background(), Config{Addr: addr, Mode: Ping, Duration: 2 * time.Second, Interval: time.Microsecond})
	if err == nil || st.Errors == 0 {
		t.Fatalf("a corrupted byte went unnoticed: %+v, %v", st, err)
	}
}

func TestServerThatCloses(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.CopyN(c, c, 1000)
			c.Close()
		}
	}()
	st, err := Run(context.Background(), Config{Addr: ln.Addr().String(), Mode: Ping, Duration: 2 * time.Second, Interval: time.Microsecond})
	if err == nil || st.Errors == 0 {
		t.Fatalf("a server that closed went unnoticed: %+v", st)
	}
}
