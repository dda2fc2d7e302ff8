package wire

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
)

func testKey(seed byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// Fixed nonces for tests that need the session keys to be known.
var (
	fixedClientNonce = bytes.Repeat([]byte{0xc1}, nonceLen)
	fixedServerNonce = bytes.Repeat([]byte{0x5e}, nonceLen)
)

// tapConn sits under a Conn. In forward mode writes go to the wire; with
// record set they are also kept; with hold set they are kept and not sent,
// so a test can deliver, drop, reorder or alter them itself.
type tapConn struct {
	net.Conn
	mu     sync.Mutex
	record bool
	hold   bool
	kept   bytes.Buffer
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.record || c.hold {
		c.kept.Write(p)
	}
	hold := c.hold
	c.mu.Unlock()
	if hold {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *tapConn) setHold(on bool) { c.mu.Lock(); c.hold = on; c.mu.Unlock() }

func (c *tapConn) setRecord(on bool) { c.mu.Lock(); c.record = on; c.mu.Unlock() }

// take returns and forgets what was kept.
func (c *tapConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := bytes.Clone(c.kept.Bytes())
	c.kept.Reset()
	return b
}

// session is a client and a server Conn over net.Pipe. clientRaw is the
// client's pipe end: bytes written to it reach the server as if the client
// sent them.
type session struct {
	client, server       *Conn
	clientRaw, serverRaw net.Conn
	clientTap, serverTap *tapConn
}

// runHandshake runs both sides concurrently and returns both results.
func runHandshake(cnc, snc net.Conn, ckey, skey []byte, cfg *Config, fixed bool) (c, s *Conn, cerr, serr error) {
	var crnd, srnd io.Reader
	if fixed {
		crnd, srnd = bytes.NewReader(fixedClientNonce), bytes.NewReader(fixedServerNonce)
	} else {
		crnd, srnd = rand.Reader, rand.Reader
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s, serr = handshake(snc, skey, cfg, false, srnd)
	}()
	c, cerr = handshake(cnc, ckey, cfg, true, crnd)
	<-done
	return c, s, cerr, serr
}

// newSession makes an authenticated pair; fixed selects the fixed nonces.
func newSession(t testing.TB, cfg *Config, fixed bool) *session {
	t.Helper()
	cp, sp := net.Pipe()
	s := &session{clientRaw: cp, serverRaw: sp, clientTap: &tapConn{Conn: cp}, serverTap: &tapConn{Conn: sp}}
	key := testKey(1)
	var cerr, serr error
	s.client, s.server, cerr, serr = runHandshake(s.clientTap, s.serverTap, key, key, cfg, fixed)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	t.Cleanup(func() { s.client.Close(); s.server.Close() })
	return s
}

// heldFrames has the client send the messages without delivering them and
// returns each frame's raw bytes.
func (s *session) heldFrames(t testing.TB, msgs ...[]byte) [][]byte {
	t.Helper()
	s.clientTap.setHold(true)
	defer s.clientTap.setHold(false)
	var frames [][]byte
	for i, m := range msgs {
		if err := s.client.Send(uint8(10+i), m); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		frames = append(frames, s.clientTap.take())
	}
	return frames
}

// inject writes raw bytes to the server as the client, in the background,
// then optionally closes the client's end. Wait for the returned channel.
func (s *session) inject(b []byte, closeAfter bool) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.clientRaw.Write(b)
		if closeAfter {
			s.clientRaw.Close()
		}
	}()
	return done
}

// docFrame builds a frame from the format in doc.go, independently of the
// package's own code, under the session key for the given direction.
func docFrame(sessionKey []byte, seq uint64, typ uint8, payload []byte) []byte {
	f := []byte("SSFR")
	f = append(f, Version, typ, 0)
	f = binary.BigEndian.AppendUint64(f, seq)
	f = binary.BigEndian.AppendUint32(f, uint32(len(payload)))
	block, err := aes.NewCipher(sessionKey)
	if err != nil {
		panic(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	nonce := binary.BigEndian.AppendUint64(make([]byte, 4), seq)
	return gcm.Seal(f, nonce, payload, bytes.Clone(f)) // the header is the additional data
}

// docSessionKey derives a direction's key as doc.go says.
func docSessionKey(key []byte, label string, cn, sn []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(cn)
	m.Write(sn)
	return m.Sum(nil)
}
