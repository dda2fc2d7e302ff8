package count

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func serve(t *testing.T) (*Server, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	go s.Serve(ln)
	t.Cleanup(func() { ln.Close(); s.Close() })
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return s, c
}

func TestLinesComeBackNumbered(t *testing.T) {
	s, c := serve(t)
	r := bufio.NewReader(c)
	// Lines split across writes, and several in one write.
	for _, w := range []string{"hel", "lo\nsec", "ond\n\nlast\n"} {
		if _, err := c.Write([]byte(w)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{"1 hello\n", "2 second\n", "3 \n", "4 last\n"} {
		got, err := r.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("got %q (%v), want %q", got, err, want)
		}
	}
	conns := s.Connections()
	if len(conns) != 1 || conns[0].Lines != 4 || conns[0].BytesIn != 19 || conns[0].BytesOut != 27 {
		t.Fatalf("connections: %+v", conns)
	}
}

func TestLongLineAnsweredInPieces(t *testing.T) {
	_, c := serve(t)
	long := strings.Repeat("x", MaxLine+10)
	go c.Write([]byte(long + "\n"))
	r := bufio.NewReader(c)
	for _, want := range []string{"1 " + long[:MaxLine] + "\n", "2 " + long[MaxLine:] + "\n"} {
		got, err := r.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("got %d bytes %.20q (%v), want %d bytes", len(got), got, err, len(want))
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, st := range []state{
		{},
		{lines: 41, line: []byte("half a li"), pending: []byte("41 answer\n"), in: 1000, out: 990},
	} {
		got, err := decodeState(encodeState(st))
		if err != nil {
			t.Fatal(err)
		}
		// Empty and nil slices decode alike.
		norm := func(s state) string { return fmt.Sprintf("%d %q %q %d %d", s.lines, s.line, s.pending, s.in, s.out) }
		if norm(got) != norm(st) {
			t.Fatalf("round trip: %s, want %s", norm(got), norm(st))
		}
	}
}

func TestBadSnapshotsRefused(t *testing.T) {
	good := encodeState(state{lines: 3, line: []byte("ab")})
	s := &Server{}
	if err := s.CheckConn(good); err != nil {
		t.Fatal(err)
	}
	tooLong := encodeState(state{line: bytes.Repeat([]byte("x"), MaxLine)})
	for name, b := range map[string][]byte{
		"empty":       nil,
		"version":     append([]byte{9}, good[1:]...),
		"truncated":   good[:len(good)-1],
		"trailing":    append(append([]byte{}, good...), 0),
		"line at max": tooLong,
	} {
		if err := s.CheckConn(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState(state{lines: 7, line: []byte("abc"), pending: []byte("7 x\n"), in: 9, out: 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := decodeState(b)
		if err != nil {
			return
		}
		again, err := decodeState(encodeState(st))
		if err != nil || !reflect.DeepEqual(again, st) && !(len(st.line) == 0 && len(st.pending) == 0) {
			t.Fatalf("round trip of %x: %+v, %v", b, again, err)
		}
	})
}
