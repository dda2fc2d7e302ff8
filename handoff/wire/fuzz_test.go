package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzRecv feeds arbitrary bytes to a server after a genuine handshake.
// Recv must never panic, and any message it returns must be exactly the
// authentic frame (built independently, from doc.go) for its sequence
// number. The session uses fixed nonces so that seeds holding authentic
// frames stay authentic and the fuzzer can mutate them.
func FuzzRecv(f *testing.F) {
	cfg := &Config{MaxFrame: 1 << 16} // keep inputs from allocating 64 MiB
	s := newSession(f, cfg, true)
	frames := s.heldFrames(f, []byte("prepare"), nil, bytes.Repeat([]byte{7}, 300))
	all := bytes.Join(frames, nil)
	f.Add(all)
	f.Add(frames[0])
	f.Add(frames[1])
	f.Add(append(bytes.Clone(frames[1]), frames[0]...))
	f.Add(append(bytes.Clone(frames[0]), frames[0]...))
	f.Add(all[:len(all)-1])
	f.Add(all[:headerLen+3])
	flipped := bytes.Clone(all)
	flipped[headerLen+2] ^= 1
	f.Add(flipped)
	f.Add(rawHeader(1, 0, 1<<31))
	f.Add(rawHeader(1, 0, 10))
	f.Add(hsMessage(kindClientHello, make([]byte, nonceLen)))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{})

	kcs := docSessionKey(testKey(1), labelClientToServer, fixedClientNonce, fixedServerNonce)
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSession(t, cfg, true)
		// Nothing was sent after the handshake, so nothing is buffered.
		s.server.r = bufio.NewReader(bytes.NewReader(data))
		off := 0
		for seq := uint64(0); ; seq++ {
			typ, p, err := s.server.Recv()
			if err != nil {
				if _, _, err2 := s.server.Recv(); err2 == nil {
					t.Fatal("Recv succeeded after an error")
				}
				return
			}
			want := docFrame(kcs, seq, typ, p)
			if !bytes.HasPrefix(data[off:], want) {
				t.Fatalf("accepted message %d (type %d, %d bytes) that is not the authentic frame", seq, typ, len(p))
			}
			off += len(want)
		}
	})
}

type codecField struct {
	kind byte // 0 u8, 1 u16, 2 u32, 3 u64, 4 bool, 5 bytes, 6 string
	u    uint64
	b    []byte
}

// codecFields turns fuzz input into a list of fields.
func codecFields(data []byte) []codecField {
	next := func(n int) []byte {
		p := make([]byte, n)
		k := copy(p, data)
		data = data[k:]
		return p
	}
	var fields []codecField
	for len(data) > 0 {
		f := codecField{kind: data[0] % 7}
		data = data[1:]
		switch f.kind {
		case 0:
			f.u = uint64(next(1)[0])
		case 1:
			f.u = uint64(binary.BigEndian.Uint16(next(2)))
		case 2:
			f.u = uint64(binary.BigEndian.Uint32(next(4)))
		case 3:
			f.u = binary.BigEndian.Uint64(next(8))
		case 4:
			f.u = uint64(next(1)[0] & 1)
		case 5, 6:
			n := int(next(1)[0])
			f.b = next(min(n, len(data)))
		}
		fields = append(fields, f)
	}
	return fields
}

func FuzzCodecRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0xff, 1, 0x12, 0x34, 2, 1, 2, 3, 4, 3, 1, 2, 3, 4, 5, 6, 7, 8, 4, 1, 5, 3, 'a', 'b', 'c', 6, 2, 'h', 'i'})
	f.Add([]byte{5, 0, 6, 0, 5, 200, 1, 2})
	f.Add([]byte{3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		fields := codecFields(data)
		var e Encoder
		size := 0
		for _, fl := range fields {
			switch fl.kind {
			case 0:
				e.U8(uint8(fl.u))
				size++
			case 1:
				e.U16(uint16(fl.u))
				size += 2
			case 2:
				e.U32(uint32(fl.u))
				size += 4
			case 3:
				e.U64(fl.u)
				size += 8
			case 4:
				e.Bool(fl.u == 1)
				size++
			case 5:
				e.Bytes(fl.b)
				size += 4 + len(fl.b)
			case 6:
				e.String(string(fl.b))
				size += 4 + len(fl.b)
			}
		}
		if e.Err() != nil {
			t.Fatal(e.Err())
		}
		out := e.Data()
		if len(out) != size {
			t.Fatalf("encoded %d bytes, want %d", len(out), size)
		}
		d := NewDecoder(out)
		for i, fl := range fields {
			var got codecField
			got.kind = fl.kind
			switch fl.kind {
			case 0:
				got.u = uint64(d.U8())
			case 1:
				got.u = uint64(d.U16())
			case 2:
				got.u = uint64(d.U32())
			case 3:
				got.u = d.U64()
			case 4:
				if d.Bool() {
					got.u = 1
				}
			case 5:
				got.b = d.Bytes(len(fl.b)) // the tightest bound that fits
			case 6:
				got.b = []byte(d.String(len(fl.b)))
			}
			if got.u != fl.u || !bytes.Equal(got.b, fl.b) {
				t.Fatalf("field %d (kind %d): got %d %x, want %d %x (err %v)", i, fl.kind, got.u, got.b, fl.u, fl.b, d.Err())
			}
		}
		if err := d.Finish(); err != nil {
			t.Fatal(err)
		}
		// One byte under the bound is refused.
		d = NewDecoder(out)
		for _, fl := range fields {
			switch fl.kind {
			case 0, 4:
				d.U8()
			case 1:
				d.U16()
			case 2:
				d.U32()
			case 3:
				d.U64()
			case 5, 6:
				if len(fl.b) > 0 {
					if d.Bytes(len(fl.b)-1) != nil || !errors.Is(d.Err(), ErrTooLarge) || !errors.Is(d.Err(), ErrMalformed) {
						t.Fatalf("a %d-byte field passed a bound of %d: %v", len(fl.b), len(fl.b)-1, d.Err())
					}
					return
				}
				d.Bytes(0)
			}
		}
	})
}

// FuzzDecoder runs a program of reads (prog) over junk (data). Reads must
// stay in bounds, never panic, honour their limits, return copies, and
// stick to the first error.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c', 1}, []byte{5, 10, 4})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2}, []byte{5, 255, 0})
	f.Add([]byte{2}, []byte{4})
	f.Add([]byte{0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}, []byte{6, 1, 6, 2})
	f.Add(bytes.Repeat([]byte{1}, 64), []byte{0, 1, 2, 3, 4, 5, 9, 6, 9, 7})
	f.Fuzz(func(t *testing.T, data, prog []byte) {
		orig := bytes.Clone(data)
		d := NewDecoder(data)
		var first error
		for i := 0; i < len(prog); i++ {
			op := prog[i] % 8
			limit := 0
			if (op == 5 || op == 6) && i+1 < len(prog) {
				i++
				limit = int(prog[i])*4 - 100 // negative limits too
			}
			before := d.off
			var zero bool
			switch op {
			case 0:
				zero = d.U8() == 0
			case 1:
				zero = d.U16() == 0
			case 2:
				zero = d.U32() == 0
			case 3:
				zero = d.U64() == 0
			case 4:
				zero = !d.Bool()
			case 5:
				b := d.Bytes(limit)
				zero = b == nil
				if len(b) > max(limit, 0) {
					t.Fatalf("Bytes(%d) returned %d bytes", limit, len(b))
				}
				if len(b) > 0 {
					b[0] ^= 0xff // must be a copy
					if !bytes.Equal(data, orig) {
						t.Fatal("Bytes returned a slice of the input")
					}
				}
			case 6:
				s := d.String(limit)
				zero = s == ""
				if len(s) > max(limit, 0) {
					t.Fatalf("String(%d) returned %d bytes", limit, len(s))
				}
			case 7:
				zero = true
				if err := d.Finish(); (err == nil) != (first == nil && d.off == len(data)) {
					t.Fatalf("Finish = %v with err %v, %d of %d read", err, first, d.off, len(data))
				}
			}
			if d.off < before || d.off > len(data) {
				t.Fatalf("offset moved from %d to %d of %d", before, d.off, len(data))
			}
			if first != nil {
				if d.Err() != first || d.off != before || !zero {
					t.Fatalf("read after error: offset %d->%d, zero %v, err %v (first %v)", before, d.off, zero, d.Err(), first)
				}
				continue
			}
			if err := d.Err(); err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				first = err
			}
		}
		if err := d.Finish(); (err == nil) != (first == nil && d.off == len(data)) || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Fatalf("Finish = %v with err %v, %d of %d read", err, first, d.off, len(data))
		}
	})
}
