package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Encoder appends big-endian fields to a payload. The zero value is ready
// to use.
type Encoder struct {
	buf []byte
	err error
}

// U8 appends one byte.
func (e *Encoder) U8(v uint8) {
	if e.err == nil {
		e.buf = append(e.buf, v)
	}
}

// U16 appends v, big-endian.
func (e *Encoder) U16(v uint16) {
	if e.err == nil {
		e.buf = binary.BigEndian.AppendUint16(e.buf, v)
	}
}

// U32 appends v, big-endian.
func (e *Encoder) U32(v uint32) {
	if e.err == nil {
		e.buf = binary.BigEndian.AppendUint32(e.buf, v)
	}
}

// U64 appends v, big-endian.
func (e *Encoder) U64(v uint64) {
	if e.err == nil {
		e.buf = binary.BigEndian.AppendUint64(e.buf, v)
	}
}

// Bool appends 1 for true, 0 for false.
func (e *Encoder) Bool(v bool) {
	var b uint8
	if v {
		b = 1
	}
	e.U8(b)
}

// Bytes appends b with a u32 length prefix. A b longer than 4 GiB - 1 sets
// the Encoder's error (it could never be sent: see Config.MaxFrame).
func (e *Encoder) Bytes(b []byte) {
	if e.err != nil {
		return
	}
	if uint64(len(b)) > math.MaxUint32 {
		e.err = fmt.Errorf("wire: encode: field of %d bytes does not fit a u32 length: %w", len(b), ErrTooLarge)
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(b)))
	e.buf = append(e.buf, b...)
}

// NewEncoder returns an Encoder that appends to buf[:0]: a payload built in
// a buffer the caller recycles.
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf[:0]} }

// AppendField appends a field like Bytes whose n bytes fill appends in
// place (no copy of a large value built elsewhere first). fill must append
// exactly n bytes, else the Encoder's error is set.
func (e *Encoder) AppendField(n int, fill func(b []byte) ([]byte, error)) {
	if e.err != nil {
		return
	}
	if uint64(n) > math.MaxUint32 {
		e.err = fmt.Errorf("wire: encode: field of %d bytes does not fit a u32 length: %w", n, ErrTooLarge)
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(n))
	start := len(e.buf)
	b, err := fill(e.buf)
	switch {
	case err != nil:
		e.err = fmt.Errorf("wire: encode: %w", err)
	case len(b)-start != n:
		e.err = fmt.Errorf("wire: encode: field declared %d bytes, %d written", n, len(b)-start)
	default:
		e.buf = b
	}
}

// String appends s like Bytes.
func (e *Encoder) String(s string) {
	if e.err != nil {
		return
	}
	if uint64(len(s)) > math.MaxUint32 {
		e.err = fmt.Errorf("wire: encode: string of %d bytes does not fit a u32 length: %w", len(s), ErrTooLarge)
		return
	}
	e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(len(s)))
	e.buf = append(e.buf, s...)
}

// Data returns the encoded payload, or nil if Err is set, so that a broken
// payload is never sent looking whole.
func (e *Encoder) Data() []byte {
	if e.err != nil {
		return nil
	}
	return e.buf
}

// Err returns the first encoding error (a field too large), or nil.
func (e *Encoder) Err() error { return e.err }

// Decoder reads fields written by an Encoder from an untrusted payload.
// Every read is bounded by the bytes left and, for Bytes and String, by the
// caller's limit. The first error sticks: later reads return zero values.
type Decoder struct {
	b   []byte
	off int
	err error
}

// NewDecoder returns a Decoder reading b. It keeps b; Bytes returns
// copies, View does not.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

// take returns the next n bytes, or nil after setting the error.
func (d *Decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if left := len(d.b) - d.off; n > left {
		d.err = fmt.Errorf("wire: decode: %s at offset %d needs %d bytes, %d left: %w", what, d.off, n, left, ErrMalformed)
		return nil
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p
}

// U8 reads one byte.
func (d *Decoder) U8() uint8 {
	if p := d.take(1, "u8"); p != nil {
		return p[0]
	}
	return 0
}

// U16 reads a big-endian uint16.
func (d *Decoder) U16() uint16 {
	if p := d.take(2, "u16"); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

// U32 reads a big-endian uint32.
func (d *Decoder) U32() uint32 {
	if p := d.take(4, "u32"); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// U64 reads a big-endian uint64.
func (d *Decoder) U64() uint64 {
	if p := d.take(8, "u64"); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// Bool reads a byte that must be 0 or 1.
func (d *Decoder) Bool() bool {
	at := d.off
	p := d.take(1, "bool")
	if p == nil {
		return false
	}
	if p[0] > 1 {
		d.err = fmt.Errorf("wire: decode: bool at offset %d is %d, want 0 or 1: %w", at, p[0], ErrMalformed)
		return false
	}
	return p[0] == 1
}

// field reads a u32-length-prefixed field of at most max bytes, without
// copying.
func (d *Decoder) field(max int, what string) []byte {
	at := d.off
	n := d.U32()
	if d.err != nil {
		return nil
	}
	if max < 0 {
		max = 0
	}
	if uint64(n) > uint64(max) {
		d.err = fmt.Errorf("wire: decode: %s at offset %d is %d bytes, limit %d: %w (%w)", what, at, n, max, ErrMalformed, ErrTooLarge)
		return nil
	}
	return d.take(int(n), what)
}

// Bytes reads a length-prefixed byte string of at most max bytes and
// returns a copy. A longer or truncated field is an error.
func (d *Decoder) Bytes(max int) []byte {
	p := d.field(max, "bytes")
	if p == nil {
		return nil
	}
	return append(make([]byte, 0, len(p)), p...)
}

// View reads a field like Bytes but returns it in place: it aliases the
// payload, for large fields of a payload nobody reuses (Conn.Recv returns
// a fresh one each time).
func (d *Decoder) View(max int) []byte {
	p := d.field(max, "bytes")
	if len(p) == 0 {
		return nil
	}
	return p[:len(p):len(p)]
}

// String reads a length-prefixed string of at most max bytes.
func (d *Decoder) String(max int) string {
	return string(d.field(max, "string"))
}

// Err returns the first error (wrapping ErrMalformed), or nil if every read
// so far was in bounds.
func (d *Decoder) Err() error { return d.err }

// Finish returns Err, or an error wrapping ErrMalformed if bytes are left
// over: a payload must be read exactly.
func (d *Decoder) Finish() error {
	if d.err != nil {
		return d.err
	}
	if left := len(d.b) - d.off; left > 0 {
		return fmt.Errorf("wire: decode: %d bytes left over after offset %d: %w", left, d.off, ErrMalformed)
	}
	return nil
}
