package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// testMessage is message i of a direction: its type and content are a
// function of (dir, i, size) so the receiver can check every byte.
func testMessage(dir, i, size int) (uint8, []byte) {
	r := rand.New(rand.NewPCG(uint64(dir), uint64(i)))
	p := make([]byte, size)
	for j := range p {
		p[j] = byte(r.Uint32())
	}
	return uint8(i*7 + dir), p
}

func testSizes() []int {
	sizes := []int{0, 1, 2, 3, 15, 16, 17, 18, 19, 31, 32, 33, 255, 256, 1000,
		4095, 4096, 4097, 32767, 32768, 32769, 65535, 65536, 65537, 100000, 1<<20 - 1, 1 << 20}
	r := rand.New(rand.NewPCG(7, 7))
	for range 200 {
		sizes = append(sizes, r.IntN(8192))
	}
	sizes = append(sizes, 0, 1<<20, 0)
	return sizes
}

// exchange sends the test messages both ways at once and checks each one.
func exchange(t *testing.T, a, b *Conn) {
	t.Helper()
	sizes := testSizes()
	for _, c := range []*Conn{a, b} {
		if err := c.SetDeadline(time.Now().Add(60 * time.Second)); err != nil { // a hang fails, never blocks
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for dir, ends := range [][2]*Conn{{a, b}, {b, a}} {
		from, to := ends[0], ends[1]
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i, n := range sizes {
				typ, p := testMessage(dir, i, n)
				if err := from.Send(typ, p); err != nil {
					errs <- fmt.Errorf("dir %d: send %d: %w", dir, i, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i, n := range sizes {
				typ, p, err := to.Recv()
				if err != nil {
					errs <- fmt.Errorf("dir %d: recv %d: %w", dir, i, err)
					return
				}
				wantTyp, want := testMessage(dir, i, n)
				if typ != wantTyp || !bytes.Equal(p, want) {
					errs <- fmt.Errorf("dir %d: message %d: got type %d, %d bytes; want type %d, %d bytes (equal=%v)",
						dir, i, typ, len(p), wantTyp, len(want), bytes.Equal(p, want))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRoundTripPipe(t *testing.T) {
	s := newSession(t, nil, false)
	exchange(t, s.client, s.server)
}

// tcpPair makes a client and a server Conn over loopback TCP.
func tcpPair(t testing.TB, ckey, skey []byte, cfg *Config) (c, s *Conn, cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw, err := ln.Accept()
		if err != nil {
			serr = err
			return
		}
		s, serr = Server(raw, skey, cfg)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, cerr = Client(raw, ckey, cfg)
	<-done
	t.Cleanup(func() {
		if c != nil {
			c.Close()
		}
		if s != nil {
			s.Close()
		}
	})
	return c, s, cerr, serr
}

func TestRoundTripTCP(t *testing.T) {
	c, s, cerr, serr := tcpPair(t, testKey(3), testKey(3), nil)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if got, want := c.RemoteAddr().String(), s.nc.LocalAddr().String(); got != want {
		t.Errorf("client RemoteAddr %s, want %s", got, want)
	}
	exchange(t, c, s)
}

func TestConcurrentSenders(t *testing.T) {
	s := newSession(t, nil, false)
	const senders, each = 8, 50
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, p := testMessage(g, i, 100+i*37)
				if err := s.client.Send(uint8(g), p); err != nil {
					t.Errorf("sender %d: %v", g, err)
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	s.server.SetDeadline(time.Now().Add(30 * time.Second))
	for range senders * each {
		typ, p, err := s.server.Recv()
		if err != nil {
			t.Fatal(err)
		}
		g := int(typ)
		if g >= senders {
			t.Fatalf("type %d", typ)
		}
		_, want := testMessage(g, next[g], 100+next[g]*37)
		if !bytes.Equal(p, want) {
			t.Fatalf("sender %d message %d corrupted", g, next[g])
		}
		next[g]++
	}
	wg.Wait()
}

func TestWrongKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		pair func() (cerr, serr error)
	}{
		{"pipe", func() (error, error) {
			cp, sp := net.Pipe()
			_, _, cerr, serr := runHandshake(cp, sp, testKey(1), testKey(2), nil, false)
			return cerr, serr
		}},
		{"tcp", func() (error, error) {
			_, _, cerr, serr := tcpPair(t, testKey(1), testKey(2), nil)
			return cerr, serr
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cerr, serr := tc.pair()
			if !errors.Is(cerr, ErrAuth) {
				t.Errorf("client: got %v, want ErrAuth", cerr)
			}
			if !errors.Is(serr, ErrAuth) {
				t.Errorf("server: got %v, want ErrAuth", serr)
			}
		})
	}
}

// A peer that has the protocol right but not the key: it answers the
// client's hello with a made-up proof, or sends the server a made-up proof.
func TestForgedProofs(t *testing.T) {
	t.Run("fake server", func(t *testing.T) {
		cp, sp := net.Pipe()
		go func() {
			io.ReadFull(sp, make([]byte, hsHeaderLen+nonceLen))
			sp.Write(hsMessage(kindServerHello, make([]byte, 2*nonceLen)))
			io.ReadFull(sp, make([]byte, hsHeaderLen+nonceLen)) // the client's proof
			sp.Write(hsMessage(kindServerFinished, make([]byte, nonceLen)))
			sp.Close()
		}()
		_, err := Client(cp, testKey(1), nil)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
	t.Run("fake client", func(t *testing.T) {
		cp, sp := net.Pipe()
		go func() {
			cp.Write(hsMessage(kindClientHello, make([]byte, nonceLen)))
			io.ReadFull(cp, make([]byte, hsHeaderLen+2*nonceLen))
			cp.Write(hsMessage(kindClientProof, make([]byte, nonceLen)))
			io.Copy(io.Discard, cp)
		}()
		_, err := Server(sp, testKey(1), nil)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
}

func TestFrameMatchesDoc(t *testing.T) {
	s := newSession(t, nil, true)
	frames := s.heldFrames(t, []byte("state"), nil)
	kcs := docSessionKey(testKey(1), "sockshift/wire/v1 client to server", fixedClientNonce, fixedServerNonce)
	if want := docFrame(kcs, 0, 10, []byte("state")); !bytes.Equal(frames[0], want) {
		t.Errorf("frame 0:\n got %x\nwant %x", frames[0], want)
	}
	if want := docFrame(kcs, 1, 11, nil); !bytes.Equal(frames[1], want) {
		t.Errorf("frame 1:\n got %x\nwant %x", frames[1], want)
	}
	// And the server accepts a frame built from the doc alone.
	done := s.inject(docFrame(kcs, 0, 42, []byte("from the doc")), false)
	typ, p, err := s.server.Recv()
	<-done
	if err != nil || typ != 42 || string(p) != "from the doc" {
		t.Fatalf("got %d %q %v", typ, p, err)
	}
}

// Flipping any byte of a frame gets it refused, with the error of the
// field it hit.
func TestTamperedFrame(t *testing.T) {
	msg := []byte("hello, B")
	// Control: the untouched frame is accepted, so the refusals below
	// are due to the flips.
	s := newSession(t, nil, false)
	f := s.heldFrames(t, msg)[0]
	done := s.inject(f, true)
	if typ, p, err := s.server.Recv(); err != nil || typ != 10 || !bytes.Equal(p, msg) {
		t.Fatalf("untouched frame: %d %q %v", typ, p, err)
	}
	<-done

	n := len(f)
	if n != headerLen+len(msg)+tagLen {
		t.Fatalf("frame is %d bytes", n)
	}
	for i := range n {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			s := newSession(t, nil, false)
			f := s.heldFrames(t, msg)[0]
			f[i] ^= mask
			s.server.SetDeadline(time.Now().Add(10 * time.Second))
			done := s.inject(f, true)
			typ, p, err := s.server.Recv()
			<-done
			if err == nil || p != nil || typ != 0 {
				t.Fatalf("byte %d ^%#x: accepted (%d %q %v)", i, mask, typ, p, err)
			}
			var want []error
			switch {
			case i < offVersion, i == offFlags:
				want = []error{ErrMalformed}
			case i == offVersion:
				want = []error{ErrVersion}
			case i >= offLength && i < headerLen:
				// Longer: too large or runs out of bytes; shorter: tag fails.
				want = []error{ErrTooLarge, io.ErrUnexpectedEOF, ErrAuth}
			default: // type, seq, payload, tag
				want = []error{ErrAuth}
			}
			if !isAny(err, want) {
				t.Errorf("byte %d ^%#x: got %v, want one of %v", i, mask, err, want)
			}
			// Fail closed: the Conn stays dead.
			if _, _, err2 := s.server.Recv(); err2 == nil {
				t.Fatalf("byte %d: Recv after failure succeeded", i)
			}
		}
	}
}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func TestReplayWithinSession(t *testing.T) {
	msgs := [][]byte{[]byte("zero"), []byte("one"), []byte("two")}
	for _, tc := range []struct {
		name  string
		order []int // frames delivered, by index
		good  int   // how many are accepted before the refusal
		want  error // nil: all accepted
	}{
		{"in order", []int{0, 1, 2}, 3, nil},
		{"duplicate", []int{0, 0}, 1, ErrReplay},
		{"re-inject later", []int{0, 1, 0}, 2, ErrReplay},
		{"reorder", []int{1, 0}, 0, ErrReplay},
		{"drop", []int{0, 2}, 1, ErrReplay},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, nil, false)
			frames := s.heldFrames(t, msgs...)
			var raw []byte
			for _, i := range tc.order {
				raw = append(raw, frames[i]...)
			}
			s.server.SetDeadline(time.Now().Add(10 * time.Second))
			done := s.inject(raw, true)
			defer func() { <-done }()
			for k := range tc.good {
				typ, p, err := s.server.Recv()
				i := tc.order[k]
				if err != nil || typ != uint8(10+i) || !bytes.Equal(p, msgs[i]) {
					t.Fatalf("frame %d: %d %q %v", k, typ, p, err)
				}
			}
			if tc.want == nil {
				return
			}
			_, p, err := s.server.Recv()
			if !errors.Is(err, tc.want) || p != nil {
				t.Fatalf("got %q %v, want %v", p, err, tc.want)
			}
			// Fail closed: both directions stay dead, the peer is cut off.
			if _, _, err := s.server.Recv(); !errors.Is(err, tc.want) {
				t.Errorf("second Recv: %v, want %v", err, tc.want)
			}
			if err := s.server.Send(1, nil); !errors.Is(err, tc.want) {
				t.Errorf("Send after failure: %v, want %v", err, tc.want)
			}
		})
	}
}

// A frame the server sent, reflected back at it, does not verify: each
// direction has its own key.
func TestReflectedFrame(t *testing.T) {
	s := newSession(t, nil, false)
	s.serverTap.setHold(true)
	if err := s.server.Send(10, []byte("to the client")); err != nil {
		t.Fatal(err)
	}
	f := s.serverTap.take()
	done := s.inject(f, true)
	_, _, err := s.server.Recv()
	<-done
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("got %v, want ErrAuth", err)
	}
}

// Everything a client sent in one session, replayed into new sessions,
// is refused: first the whole recording as a handshake, then its frames
// after a genuine handshake.
func TestReplayAcrossSessions(t *testing.T) {
	cp, sp := net.Pipe()
	tap := &tapConn{Conn: cp, record: true}
	c, s, cerr, serr := runHandshake(tap, sp, testKey(1), testKey(1), nil, false)
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	hs := tap.take()
	hsLen := len(hs)
	if hsLen != 2*(hsHeaderLen+nonceLen) {
		t.Fatalf("client handshake bytes: %d", hsLen)
	}
	go func() {
		for i := range 3 {
			c.Send(uint8(i), []byte("order: give up the VIP"))
		}
	}()
	for range 3 {
		if _, _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	recording := append(hs, tap.take()...)
	c.Close()
	s.Close()

	t.Run("whole recording into a new server", func(t *testing.T) {
		attacker, sp := net.Pipe()
		go io.Copy(io.Discard, attacker)
		go attacker.Write(recording)
		_, err := Server(sp, testKey(1), nil)
		attacker.Close()
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v, want ErrAuth", err)
		}
	})
	t.Run("frames into a new session", func(t *testing.T) {
		ns := newSession(t, nil, false)
		done := ns.inject(recording[hsLen:], true)
		_, p, err := ns.server.Recv()
		<-done
		if !errors.Is(err, ErrAuth) || p != nil {
			t.Fatalf("got %q %v, want ErrAuth", p, err)
		}
	})
}

func TestTruncatedFrame(t *testing.T) {
	msg := bytes.Repeat([]byte("x"), 100)
	s0 := newSession(t, nil, false)
	n := len(s0.heldFrames(t, msg)[0])
	for _, cut := range []int{1, 3, 4, 10, headerLen - 1, headerLen, headerLen + 1, headerLen + 50, n - tagLen, n - 1} {
		t.Run(fmt.Sprintf("cut %d then close", cut), func(t *testing.T) {
			s := newSession(t, nil, false)
			f := s.heldFrames(t, msg)[0]
			s.server.SetDeadline(time.Now().Add(10 * time.Second))
			done := s.inject(f[:cut], true)
			_, p, err := s.server.Recv()
			<-done
			if !errors.Is(err, io.ErrUnexpectedEOF) || p != nil {
				t.Fatalf("got %q %v, want io.ErrUnexpectedEOF", p, err)
			}
		})
		t.Run(fmt.Sprintf("cut %d then silence", cut), func(t *testing.T) {
			s := newSession(t, nil, false)
			f := s.heldFrames(t, msg)[0]
			s.server.SetDeadline(time.Now().Add(100 * time.Millisecond))
			done := s.inject(f[:cut], false)
			_, p, err := s.server.Recv()
			<-done
			if !errors.Is(err, os.ErrDeadlineExceeded) || p != nil {
				t.Fatalf("got %q %v, want os.ErrDeadlineExceeded", p, err)
			}
			// The deadline ended the Conn: the stream may be mid-frame.
			if err := s.server.Send(1, nil); err == nil {
				t.Fatal("Send after a timed-out Recv succeeded")
			}
		})
	}
	t.Run("clean close", func(t *testing.T) {
		s := newSession(t, nil, false)
		s.client.Close()
		_, _, err := s.server.Recv()
		if !errors.Is(err, io.EOF) {
			t.Fatalf("got %v, want io.EOF", err)
		}
	})
}

func rawHeader(typ uint8, seq uint64, n uint32) []byte {
	h := make([]byte, headerLen)
	copy(h, frameMagic)
	h[offVersion] = Version
	h[offType] = typ
	binary.BigEndian.PutUint64(h[offSeq:], seq)
	binary.BigEndian.PutUint32(h[offLength:], n)
	return h
}

func TestOversizedFrame(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  *Config
		n    uint32
	}{
		{"default bound + 1", nil, DefaultMaxFrame + 1},
		{"4 GiB - 1", nil, 1<<32 - 1},
		{"small bound + 1", &Config{MaxFrame: 1000}, 1001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, tc.cfg, false)
			s.server.SetDeadline(time.Now().Add(10 * time.Second))
			// The header alone, then silence: a reader that tried to read
			// the payload would hang until the deadline.
			done := s.inject(rawHeader(1, 0, tc.n), false)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, p, err := s.server.Recv()
			runtime.ReadMemStats(&after)
			<-done
			if !errors.Is(err, ErrTooLarge) || p != nil {
				t.Fatalf("got %d bytes, %v; want ErrTooLarge", len(p), err)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
				t.Errorf("allocated %d bytes while refusing a %d-byte frame", grew, tc.n)
			}
		})
	}
	t.Run("at the bound", func(t *testing.T) {
		s := newSession(t, &Config{MaxFrame: 1000}, false)
		go s.client.Send(5, make([]byte, 1000))
		if _, p, err := s.server.Recv(); err != nil || len(p) != 1000 {
			t.Fatalf("got %d bytes, %v", len(p), err)
		}
		if err := s.client.Send(5, make([]byte, 1001)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Send over the bound: %v, want ErrTooLarge", err)
		}
	})
}

// rawPeer plays the other side with fixed bytes, draining what it gets.
func rawPeer(b []byte, closeAfter bool) (net.Conn, func()) {
	ours, theirs := net.Pipe()
	done := make(chan struct{})
	go io.Copy(io.Discard, theirs)
	go func() {
		defer close(done)
		if len(b) > 0 { // an empty Write on a pipe would wait for a reader
			theirs.Write(b)
		}
		if closeAfter {
			theirs.Close()
		}
	}()
	return ours, func() { theirs.Close(); <-done }
}

func TestJunkHandshake(t *testing.T) {
	goodHello := hsMessage(kindClientHello, make([]byte, nonceLen))
	badVersion := bytes.Clone(goodHello)
	badVersion[4] = Version + 1
	for _, tc := range []struct {
		name   string
		client bool // we are the client; the junk comes from the "server"
		junk   []byte
		want   error
	}{
		{"http to server", false, []byte("GET / HTTP/1.1\r\nHost: b\r\n\r\n"), ErrMalformed},
		{"frame instead of hello", false, rawHeader(1, 0, 10), ErrMalformed},
		{"wrong kind", false, hsMessage(kindClientProof, make([]byte, nonceLen)), ErrMalformed},
		{"next version", false, badVersion, ErrVersion},
		{"huge junk", false, bytes.Repeat([]byte{0xff}, 1<<20), ErrMalformed},
		{"short junk then close", false, []byte("SSH"), io.ErrUnexpectedEOF},
		{"nothing then close", false, nil, io.ErrUnexpectedEOF},
		{"junk to client", true, []byte("SSH-2.0-OpenSSH_9.6\r\n and more bytes to fill"), ErrMalformed},
		{"hello to client", true, bytes.Repeat(goodHello, 2), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, stop := rawPeer(tc.junk, true)
			defer stop()
			cfg := &Config{HandshakeTimeout: 10 * time.Second}
			var err error
			if tc.client {
				_, err = Client(nc, testKey(1), cfg)
			} else {
				_, err = Server(nc, testKey(1), cfg)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	cfg := &Config{HandshakeTimeout: 200 * time.Millisecond}
	t.Run("idle client", func(t *testing.T) {
		nc, stop := rawPeer(nil, false)
		defer stop()
		if _, err := Server(nc, testKey(1), cfg); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want os.ErrDeadlineExceeded", err)
		}
	})
	t.Run("idle server", func(t *testing.T) {
		nc, stop := rawPeer(nil, false)
		defer stop()
		if _, err := Client(nc, testKey(1), cfg); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want os.ErrDeadlineExceeded", err)
		}
	})
	t.Run("slow client over tcp", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			// A byte of a valid hello every 20 ms: never done in time.
			for _, b := range hsMessage(kindClientHello, make([]byte, nonceLen)) {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
			<-stop
		}()
		raw, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Server(raw, testKey(1), cfg); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want os.ErrDeadlineExceeded", err)
		}
		// Server closed the connection: a write fails or reads EOF.
		if _, err := raw.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection still open after the handshake failed")
		}
	})
}

// The handshake leaves a deadline the caller set in force, and its own
// timeout does not outlive it.
func TestHandshakeDeadlines(t *testing.T) {
	t.Run("caller deadline kept", func(t *testing.T) {
		cp, sp := net.Pipe()
		sp.SetDeadline(time.Now().Add(500 * time.Millisecond))
		c, s, cerr, serr := runHandshake(cp, sp, testKey(1), testKey(1), nil, false)
		if cerr != nil || serr != nil {
			t.Fatal(cerr, serr)
		}
		defer c.Close()
		if _, _, err := s.Recv(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("got %v, want the caller's deadline", err)
		}
	})
	t.Run("handshake timeout does not outlive it", func(t *testing.T) {
		cp, sp := net.Pipe()
		cfg := &Config{HandshakeTimeout: 50 * time.Millisecond}
		c, s, cerr, serr := runHandshake(cp, sp, testKey(1), testKey(1), cfg, false)
		if cerr != nil || serr != nil {
			t.Fatal(cerr, serr)
		}
		defer c.Close()
		defer s.Close()
		time.Sleep(150 * time.Millisecond) // past the handshake timeout
		go c.Send(1, []byte("later"))
		if _, p, err := s.Recv(); err != nil || string(p) != "later" {
			t.Fatalf("got %q %v", p, err)
		}
	})
}

func TestCloseAndConfig(t *testing.T) {
	s := newSession(t, nil, false)
	if err := s.client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.client.Send(1, nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: %v, want net.ErrClosed", err)
	}
	if _, _, err := s.client.Recv(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Recv after Close: %v, want net.ErrClosed", err)
	}
	if err := s.client.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	for _, tc := range []struct {
		name string
		key  []byte
		cfg  *Config
	}{
		{"short key", []byte("secret"), nil},
		{"nil key", nil, nil},
		{"negative MaxFrame", testKey(1), &Config{MaxFrame: -1}},
		{"negative timeout", testKey(1), &Config{HandshakeTimeout: -time.Second}},
	} {
		nc, stop := rawPeer(nil, false)
		if _, err := Client(nc, tc.key, tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
		stop()
	}
}

func BenchmarkSendRecv(b *testing.B) {
	c, s, cerr, serr := tcpPair(b, testKey(1), testKey(1), nil)
	if cerr != nil || serr != nil {
		b.Fatal(cerr, serr)
	}
	msg := make([]byte, 64<<10)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	errc := make(chan error, 1)
	go func() {
		for range b.N {
			if err := c.Send(1, msg); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range b.N {
		if _, _, err := s.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}

// TestSendOwned: a payload given up is sealed in its own buffer (no fresh
// one) and arrives intact; one without room for the tag still arrives.
func TestSendOwned(t *testing.T) {
	c, s, cerr, serr := tcpPair(t, testKey(4), testKey(4), nil)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	for _, spare := range []int{TagLen, 0} {
		want := bytes.Repeat([]byte{byte(spare), 1, 2, 3}, 300000)
		payload := make([]byte, len(want), len(want)+spare)
		copy(payload, want)
		errc := make(chan error, 1)
		go func() { errc <- c.SendOwned(9, payload) }()
		typ, got, err := s.Recv()
		if err != nil || typ != 9 || !bytes.Equal(got, want) {
			t.Fatalf("spare %d: got type %d, %d bytes, %v", spare, typ, len(got), err)
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		if spare == TagLen && bytes.Equal(payload, want) {
			t.Errorf("spare %d: the payload was not sealed in place", spare)
		}
	}
}
