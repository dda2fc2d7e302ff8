package wire

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	var e Encoder // the zero value works
	e.U8(0xab)
	e.U16(0xbeef)
	e.U32(0xdeadbeef)
	e.U64(math.MaxUint64 - 1)
	e.Bool(true)
	e.Bool(false)
	e.Bytes([]byte{1, 2, 3})
	e.Bytes(nil)
	e.String("chat")
	want := []byte{0xab, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 1, 0,
		0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 4, 'c', 'h', 'a', 't'}
	if !bytes.Equal(e.Data(), want) {
		t.Fatalf("encoded\n %x\nwant\n %x", e.Data(), want)
	}
	d := NewDecoder(e.Data())
	if v := d.U8(); v != 0xab {
		t.Errorf("U8 %x", v)
	}
	if v := d.U16(); v != 0xbeef {
		t.Errorf("U16 %x", v)
	}
	if v := d.U32(); v != 0xdeadbeef {
		t.Errorf("U32 %x", v)
	}
	if v := d.U64(); v != math.MaxUint64-1 {
		t.Errorf("U64 %x", v)
	}
	if !d.Bool() || d.Bool() {
		t.Error("Bool")
	}
	if b := d.Bytes(3); !bytes.Equal(b, []byte{1, 2, 3}) {
		t.Errorf("Bytes %x", b)
	}
	if b := d.Bytes(0); len(b) != 0 {
		t.Errorf("empty Bytes %x", b)
	}
	if s := d.String(10); s != "chat" {
		t.Errorf("String %q", s)
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
}

func TestDecoderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		read func(d *Decoder)
		also error
	}{
		{"truncated u32", []byte{1, 2, 3}, func(d *Decoder) { d.U32() }, nil},
		{"truncated u64", make([]byte, 7), func(d *Decoder) { d.U64() }, nil},
		{"bool 2", []byte{2}, func(d *Decoder) { d.Bool() }, nil},
		{"bytes over limit", []byte{0, 0, 0, 5, 1, 2, 3, 4, 5}, func(d *Decoder) { d.Bytes(4) }, ErrTooLarge},
		{"string over limit", []byte{0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'}, func(d *Decoder) { d.String(4) }, ErrTooLarge},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 1}, func(d *Decoder) { d.Bytes(math.MaxInt) }, nil},
		{"negative limit", []byte{0, 0, 0, 1, 1}, func(d *Decoder) { d.Bytes(-1) }, ErrTooLarge},
		{"length past end", []byte{0, 0, 0, 9, 1}, func(d *Decoder) { d.Bytes(100) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.in)
			tc.read(d)
			err := d.Err()
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("got %v, want also %v", err, tc.also)
			}
			// Sticky: later reads return zero and keep the first error.
			if d.U8() != 0 || d.Bytes(10) != nil || d.Err() != err || d.Finish() != err {
				t.Fatal("error did not stick")
			}
		})
	}
	d := NewDecoder([]byte{1, 2})
	d.U8()
	if d.Err() != nil || !errors.Is(d.Finish(), ErrMalformed) {
		t.Fatalf("left-over byte: Err %v, Finish %v", d.Err(), d.Finish())
	}
}

func TestDecoderCopies(t *testing.T) {
	in := []byte{0, 0, 0, 2, 'o', 'k'}
	b := NewDecoder(in).Bytes(2)
	in[4] = 'X'
	if string(b) != "ok" {
		t.Fatalf("Bytes aliases its input: %q", b)
	}
}

// TestEncoderAppendFieldAndView: a field filled in place reads back like
// one written by Bytes; View returns it without a copy; a fill that writes
// the wrong count or fails sets the error and nothing is sent looking whole.
func TestEncoderAppendFieldAndView(t *testing.T) {
	e := NewEncoder(make([]byte, 0, 64))
	e.U8(7)
	e.AppendField(5, func(b []byte) ([]byte, error) { return append(b, "hello"...), nil })
	e.Bytes([]byte("x"))
	if e.Err() != nil {
		t.Fatal(e.Err())
	}
	var w Encoder
	w.U8(7)
	w.Bytes([]byte("hello"))
	w.Bytes([]byte("x"))
	if !bytes.Equal(e.Data(), w.Data()) {
		t.Fatalf("AppendField wrote %x, Bytes %x", e.Data(), w.Data())
	}
	b := e.Data()
	d := NewDecoder(b)
	d.U8()
	v := d.View(16)
	if string(v) != "hello" || &v[0] != &b[5] || cap(v) != len(v) {
		t.Fatalf("View: %q (cap %d), or a copy", v, cap(v))
	}
	if d.View(16); d.Err() != nil {
		t.Fatal(d.Err())
	}
	if d.View(16); d.Err() == nil {
		t.Fatal("View past the end did not fail")
	}

	for name, fill := range map[string]func([]byte) ([]byte, error){
		"short":  func(b []byte) ([]byte, error) { return append(b, "hell"...), nil },
		"failed": func(b []byte) ([]byte, error) { return b, errors.New("no") },
	} {
		var e Encoder
		e.AppendField(5, fill)
		if e.Err() == nil || e.Data() != nil {
			t.Errorf("%s fill: error %v, data %x", name, e.Err(), e.Data())
		}
	}
}
