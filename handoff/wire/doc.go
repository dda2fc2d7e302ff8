// Package wire is the hand-off channel between two sockshift servers (TCP
// 7070): an authenticated, framed, versioned message stream, a small bounded
// field codec for message payloads, and the lab's shared-key file.
//
// A restored socket speaks for the service address, so nothing on this
// channel is used unless it proves the lab's shared key K (32 bytes). Every
// frame is sealed with AES-256-GCM under a per-session, per-direction key,
// its header authenticated and its payload encrypted, and carries an
// implicit-next sequence number: junk, tampered, replayed, reordered and
// dropped frames are refused, and so are frames from another session or the
// other direction. (GCM, with AES in hardware, seals megabytes of queued
// bytes over twice as fast as HMAC-SHA256 tags them, and a hand-off of a
// busy connection waits for both ends to do so.)
//
// # Handshake
//
// The client opens with a fresh random nonce, the server answers with its
// own nonce and a proof of K over both hello messages, the client proves K
// over the whole transcript, and the server confirms that it accepted:
//
//	client                                              server
//	ClientHello   {Nc}                  ─────────────▶
//	              ◀─────────────  ServerHello   {Ns, Ps}
//	ClientProof   {Pc}                  ─────────────▶   check Pc
//	check Ps      ◀─────────────  ServerFinished {Pf}
//	check Pf
//
//	Ps = HMAC(K, "sockshift/wire/v1 server proof"    0x00 ClientHello ServerHello[:38])
//	Pc = HMAC(K, "sockshift/wire/v1 client proof"    0x00 ClientHello ServerHello)
//	Pf = HMAC(K, "sockshift/wire/v1 server finished" 0x00 ClientHello ServerHello ClientProof)
//	Kcs = HMAC(K, "sockshift/wire/v1 client to server" 0x00 Nc Ns)   client → server frames
//	Ksc = HMAC(K, "sockshift/wire/v1 server to client" 0x00 Nc Ns)   server → client frames
//
// The client sends Pc even when Ps is wrong, so that with a mismatched key
// both ends report ErrAuth (Pc is bound to the server's fresh nonce and
// cannot be reused in any other session). Every handshake message has a
// fixed size, so a wrong magic or version is refused after 6 bytes. The
// labels are distinct and NUL-terminated, so no MAC input of one use can be
// read as another's. Because both nonces feed Kcs and Ksc, a frame recorded
// from one session never verifies in another.
//
// Handshake messages (big-endian; offsets in bytes):
//
//	 0      4   5   6
//	+------+---+---+------------------------------------+
//	| SSHS | v | k | body (fixed size for kind k)       |
//	+------+---+---+------------------------------------+
//	k=1 ClientHello     body = Nc[32]
//	k=2 ServerHello     body = Ns[32] Ps[32]
//	k=3 ClientProof     body = Pc[32]
//	k=4 ServerFinished  body = Pf[32]
//
// # Frames
//
// After the handshake each direction is a sequence of frames:
//
//	 0      4   5   6   7                15        19          19+n       19+n+16
//	+------+---+---+---+----------------+---------+-----------+----------+
//	| SSFR | v | t | f | seq (u64)      | n (u32) | sealed    | tag      |
//	+------+---+---+---+----------------+---------+-----------+----------+
//	v    = Version (2)
//	t    = message type, chosen by the caller
//	f    = flags, reserved, must be 0
//	seq  = 0 for a direction's first frame, then +1 per frame
//	n    = payload length, at most Config.MaxFrame
//	sealed, tag = AES-256-GCM(key Kcs or Ksc, nonce 0x00000000 seq,
//	              plaintext payload, additional data bytes 0 .. 19)
//
// A receiver checks magic, version, flags and n before it allocates or reads
// the payload, reads exactly n+16 bytes, then opens them (ErrAuth) and then
// checks that seq is exactly the next one (ErrReplay). Only then does Recv
// return the message. A nonce never repeats under a key: each direction
// has its own key, fresh per session, and its own count.
//
// # Failing closed
//
// Any error from Send or Recv, including a deadline, ends the Conn: the
// underlying connection is closed and every later Send or Recv returns an
// error wrapping the first one. A partly read or written frame would leave
// the stream out of step, and a peer that sent one bad frame is not trusted
// with the next.
//
// # Payloads
//
// Encoder and Decoder write and read big-endian integers, booleans and
// u32-length-prefixed byte strings. The Decoder is bounded (every Bytes and
// String read names its limit) and sticky: after the first error every read
// returns a zero value, and Err or Finish reports it.
//
// Typical usage:
//
//	key, err := wire.LoadKeyFile("/etc/sockshift/key")
//	// server
//	wc, err := wire.Server(accepted, key, nil)
//	typ, payload, err := wc.Recv()
//	// client
//	wc, err := wire.Client(dialed, key, nil)
//	var e wire.Encoder
//	e.String("echo")
//	e.U32(3)
//	err = wc.Send(msgPrepare, e.Data())
package wire
