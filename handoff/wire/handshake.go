package wire

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Handshake message layout; see doc.go.
const (
	hsMagic     = "SSHS"
	hsHeaderLen = 6
	nonceLen    = 32

	kindClientHello    = 1
	kindServerHello    = 2
	kindClientProof    = 3
	kindServerFinished = 4
)

// Labels keep every use of the shared key apart (NUL-terminated in the MAC
// input, so none is a prefix of another's input).
const (
	labelServerProof    = "sockshift/wire/v1 server proof"
	labelClientProof    = "sockshift/wire/v1 client proof"
	labelServerFinished = "sockshift/wire/v1 server finished"
	labelClientToServer = "sockshift/wire/v1 client to server"
	labelServerToClient = "sockshift/wire/v1 server to client"
)

// Client runs the client side of the handshake over c and returns the
// authenticated channel. A server that does not prove the key gets ErrAuth.
//
// The handshake must finish within cfg.HandshakeTimeout; a deadline already
// set on c also bounds it and stays in force afterwards (Client does not
// change c's deadline unless the timeout fires). On error c is closed.
func Client(c net.Conn, key []byte, cfg *Config) (*Conn, error) {
	return handshake(c, key, cfg, true, rand.Reader)
}

// Server runs the server side of the handshake over c, an accepted
// connection, and returns the authenticated channel. A client that does not
// prove the key gets ErrAuth. Timeouts and errors as for Client.
func Server(c net.Conn, key []byte, cfg *Config) (*Conn, error) {
	return handshake(c, key, cfg, false, rand.Reader)
}

// handshake takes its randomness from rnd so that tests can fix the nonces.
func handshake(nc net.Conn, key []byte, cfg *Config, client bool, rnd io.Reader) (*Conn, error) {
	role := "server"
	if client {
		role = "client"
	}
	fail := func(err error) (*Conn, error) {
		nc.Close()
		return nil, fmt.Errorf("wire: %s handshake with %v: %w", role, nc.RemoteAddr(), err)
	}
	maxFrame, timeout, err := cfg.resolve()
	if err != nil {
		return fail(err)
	}
	if len(key) != KeySize {
		return fail(fmt.Errorf("shared key is %d bytes, want %d", len(key), KeySize))
	}

	// A timer rather than SetDeadline, so that a deadline the caller set
	// for the whole session survives a successful handshake.
	timer := time.AfterFunc(timeout, func() { nc.SetDeadline(time.Unix(1, 0)) })
	h := &handshaker{nc: nc, r: bufio.NewReaderSize(nc, readBufSize), key: key, rnd: rnd}
	var sendKey, recvKey []byte
	if client {
		sendKey, recvKey, err = h.client()
	} else {
		sendKey, recvKey, err = h.server()
	}
	if expired := !timer.Stop(); expired {
		// Even on success: the deadline is now in the past.
		if err == nil {
			err = os.ErrDeadlineExceeded
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("not done within %v: %w", timeout, err)
		}
	}
	if err != nil {
		return fail(err)
	}
	sendAEAD, err := newAEAD(sendKey)
	if err != nil {
		return fail(err)
	}
	recvAEAD, err := newAEAD(recvKey)
	if err != nil {
		return fail(err)
	}
	return &Conn{
		nc:       nc,
		r:        h.r,
		maxFrame: maxFrame,
		sendAEAD: sendAEAD,
		recvAEAD: recvAEAD,
	}, nil
}

// newAEAD is AES-256-GCM under a 32-byte session key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("session cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

type handshaker struct {
	nc  net.Conn
	r   *bufio.Reader
	key []byte
	rnd io.Reader
}

// client returns the client-to-server and server-to-client keys.
func (h *handshaker) client() (sendKey, recvKey []byte, err error) {
	nonce := make([]byte, nonceLen)
	if _, err := io.ReadFull(h.rnd, nonce); err != nil {
		return nil, nil, fmt.Errorf("making nonce: %w", err)
	}
	hello := hsMessage(kindClientHello, nonce)
	if err := h.write(hello); err != nil {
		return nil, nil, err
	}
	sh, err := h.read(kindServerHello, 2*nonceLen)
	if err != nil {
		return nil, nil, err
	}
	shHead, serverProof := sh[:hsHeaderLen+nonceLen], sh[hsHeaderLen+nonceLen:]

	// Prove the key before checking the server's proof, so a server with
	// another key learns of the mismatch too (see doc.go).
	proof := hsMessage(kindClientProof, h.mac(labelClientProof, hello, sh))
	if err := h.write(proof); err != nil {
		return nil, nil, err
	}
	if !hmac.Equal(serverProof, h.mac(labelServerProof, hello, shHead)) {
		return nil, nil, fmt.Errorf("server did not prove the shared key: %w", ErrAuth)
	}
	fin, err := h.read(kindServerFinished, nonceLen)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("server hung up instead of accepting our proof: %w: %w", ErrAuth, err)
		}
		return nil, nil, err
	}
	if !hmac.Equal(fin[hsHeaderLen:], h.mac(labelServerFinished, hello, sh, proof)) {
		return nil, nil, fmt.Errorf("server's confirmation does not verify: %w", ErrAuth)
	}
	cs, sc := h.sessionKeys(nonce, sh[hsHeaderLen:hsHeaderLen+nonceLen])
	return cs, sc, nil
}

// server returns the server-to-client and client-to-server keys.
func (h *handshaker) server() (sendKey, recvKey []byte, err error) {
	hello, err := h.read(kindClientHello, nonceLen)
	if err != nil {
		return nil, nil, err
	}
	nonce := make([]byte, nonceLen)
	if _, err := io.ReadFull(h.rnd, nonce); err != nil {
		return nil, nil, fmt.Errorf("making nonce: %w", err)
	}
	shHead := hsMessage(kindServerHello, nonce)
	sh := append(shHead, h.mac(labelServerProof, hello, shHead)...)
	if err := h.write(sh); err != nil {
		return nil, nil, err
	}
	proof, err := h.read(kindClientProof, nonceLen)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("client hung up without proving the shared key: %w: %w", ErrAuth, err)
		}
		return nil, nil, err
	}
	if !hmac.Equal(proof[hsHeaderLen:], h.mac(labelClientProof, hello, sh)) {
		return nil, nil, fmt.Errorf("client did not prove the shared key: %w", ErrAuth)
	}
	if err := h.write(hsMessage(kindServerFinished, h.mac(labelServerFinished, hello, sh, proof))); err != nil {
		return nil, nil, err
	}
	cs, sc := h.sessionKeys(hello[hsHeaderLen:], nonce)
	return sc, cs, nil
}

// sessionKeys derives the client-to-server and server-to-client frame keys.
func (h *handshaker) sessionKeys(clientNonce, serverNonce []byte) (cs, sc []byte) {
	return h.mac(labelClientToServer, clientNonce, serverNonce),
		h.mac(labelServerToClient, clientNonce, serverNonce)
}

// mac is HMAC-SHA256 under the shared key of label, a NUL, and parts.
func (h *handshaker) mac(label string, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(label))
	m.Write([]byte{0})
	for _, p := range parts {
		m.Write(p)
	}
	return m.Sum(nil)
}

func hsMessage(kind byte, body []byte) []byte {
	m := make([]byte, 0, hsHeaderLen+len(body)+tagLen)
	m = append(m, hsMagic...)
	m = append(m, Version, kind)
	return append(m, body...)
}

func (h *handshaker) write(m []byte) error {
	if _, err := h.nc.Write(m); err != nil {
		return fmt.Errorf("sending %s: %w", kindName(m[hsHeaderLen-1]), err)
	}
	return nil
}

// read reads one handshake message of the given kind, whose body has a
// fixed size, and returns it whole (header and body).
func (h *handshaker) read(kind byte, bodyLen int) ([]byte, error) {
	m := make([]byte, hsHeaderLen+bodyLen)
	if _, err := io.ReadFull(h.r, m[:hsHeaderLen]); err != nil {
		return nil, fmt.Errorf("waiting for %s: %w", kindName(kind), unexpectedEOF(err))
	}
	if string(m[:len(hsMagic)]) != hsMagic {
		return nil, fmt.Errorf("waiting for %s: got %q, not a sockshift handshake: %w", kindName(kind), m[:hsHeaderLen], ErrMalformed)
	}
	if v := m[len(hsMagic)]; v != Version {
		return nil, fmt.Errorf("peer speaks version %d, want %d: %w", v, Version, ErrVersion)
	}
	if k := m[hsHeaderLen-1]; k != kind {
		return nil, fmt.Errorf("got %s, want %s: %w", kindName(k), kindName(kind), ErrMalformed)
	}
	if _, err := io.ReadFull(h.r, m[hsHeaderLen:]); err != nil {
		return nil, fmt.Errorf("reading %s: %w", kindName(kind), unexpectedEOF(err))
	}
	return m, nil
}

func kindName(k byte) string {
	switch k {
	case kindClientHello:
		return "ClientHello"
	case kindServerHello:
		return "ServerHello"
	case kindClientProof:
		return "ClientProof"
	case kindServerFinished:
		return "ServerFinished"
	}
	return fmt.Sprintf("handshake message kind %d", k)
}
