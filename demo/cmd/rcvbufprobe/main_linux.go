// Command rcvbufprobe is an echo server whose connections can have their
// receive buffer locked (SO_RCVBUF), as the restored sockets of a hand-off
// are (see handoff/repair). scripts/rcvbuf-probe streams through it with
// `sockshift client --mode stream`, on a plain connection with no hand-off,
// locked and not, to tell this kernel's part in a stall from sockshift's.
//
//	rcvbufprobe -listen ADDR [-rcvbuf BYTES]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	listen := flag.String("listen", "", "serve echo on this address")
	rcvbuf := flag.Int("rcvbuf", 0, "set SO_RCVBUF on each connection (locks it; 0 leaves it to autotuning)")
	flag.Parse()
	err := errors.New("give -listen")
	if *listen != "" {
		var ln net.Listener
		if ln, err = net.Listen("tcp", *listen); err == nil {
			err = serve(ln, *rcvbuf)
		}
	}
	fmt.Fprintln(os.Stderr, "rcvbufprobe:", err)
	os.Exit(1)
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
