// Command rcvbufprobe shows how this kernel treats a TCP connection whose
// receive buffer is locked (SO_RCVBUF), with no hand-off involved: an echo
// server that reads slower than its client writes, and a client that
// checks every byte and reports its longest wait for one. The restored
// sockets of a hand-off are locked at their dumped size (see
// handoff/repair); scripts/rcvbuf-probe runs this on a plain connection,
// locked and not, to tell the kernel's part from sockshift's.
//
//	rcvbufprobe -listen ADDR [-rcvbuf BYTES]   echo server
//	rcvbufprobe -dial ADDR [-for DURATION]     verified full-speed stream
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "", "serve echo on this address")
	dial := flag.String("dial", "", "stream to the echo server at this address")
	rcvbuf := flag.Int("rcvbuf", 0, "server: set SO_RCVBUF on each connection (locks it; 0 leaves it to autotuning)")
	length := flag.Duration("for", time.Minute, "client: length of the stream")
	flag.Parse()
	var err error
	switch {
	case *listen != "":
		var ln net.Listener
		if ln, err = net.Listen("tcp", *listen); err == nil {
			err = serve(ln, *rcvbuf)
		}
	case *dial != "":
		var r result
		if r, err = stream(*dial, *length); err == nil {
			fmt.Println(r)
		}
	default:
		err = errors.New("give -listen or -dial")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rcvbufprobe:", err)
		os.Exit(1)
	}
}

// serve echoes every connection ln accepts until ln is closed.
func serve(ln net.Listener, rcvbuf int) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		if rcvbuf > 0 {
			if err := c.(*net.TCPConn).SetReadBuffer(rcvbuf); err != nil {
				c.Close()
				return fmt.Errorf("SO_RCVBUF: %w", err)
			}
		}
		go func() {
			_, _ = io.Copy(c, c)
			c.Close()
		}()
	}
}

// stallAt is the read gap counted as a stall: a retransmission timeout
// waits at least 200 ms.
const stallAt = 100 * time.Millisecond

// result is what a stream saw.
type result struct {
	length time.Duration
	bytes  uint64
	worst  time.Duration // longest wait for a read
	stalls []time.Duration
}

func (r result) String() string {
	var b strings.Builder
	for _, s := range r.stalls {
		fmt.Fprintf(&b, "stall %.1f ms\n", s.Seconds()*1000)
	}
	fmt.Fprintf(&b, "%d MB verified in %s, worst read gap %.1f ms, %d stalls >= %s",
		r.bytes>>20, r.length, r.worst.Seconds()*1000, len(r.stalls), stallAt)
	return b.String()
}

// stream writes the pattern (byte i of the stream is byte(i)) at full
// speed to the echo server at addr and checks every byte that comes back.
func stream(addr string, length time.Duration) (result, error) {
	r := result{length: length}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return r, err
	}
	defer c.Close()
	go func() {
		// 64 KB writes keep the pattern aligned.
		b := make([]byte, 64<<10)
		for i := range b {
			b[i] = byte(i)
		}
		for {
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}()
	b := make([]byte, 64<<10)
	start := time.Now()
	last := start
	for last.Sub(start) < length {
		k, err := c.Read(b)
		if err != nil {
			return r, fmt.Errorf("read after %d bytes: %w", r.bytes, err)
		}
		for i, v := range b[:k] {
			if want := byte(r.bytes + uint64(i)); v != want {
				return r, fmt.Errorf("byte %d is %d, want %d", r.bytes+uint64(i), v, want)
			}
		}
		r.bytes += uint64(k)
		now := time.Now()
		gap := now.Sub(last)
		r.worst = max(r.worst, gap)
		if gap >= stallAt {
			r.stalls = append(r.stalls, gap)
		}
		last = now
	}
	return r, nil
}
