package chat

import (
	"bytes"
	"testing"
)

// FuzzLineReader feeds the reader's line machine input in chunks of
// every size, as reads would bring it: it hands out exactly the lines of
// at most MaxLine bytes, a 417 per longer line, never holds more than a
// line and one read, and charges a longer line one line of the rate per
// MaxLine bytes.
func FuzzLineReader(f *testing.F) {
	f.Add([]byte("NICK a\r\nUSER a 0 * :a\r\n"), uint16(7))
	f.Add(append(bytes.Repeat([]byte("A"), 3000), "\r\nPING :x\r\n"...), uint16(4096))
	f.Add(append(append([]byte("x\n"), bytes.Repeat([]byte("B"), 600)...), "\nok\n"...), uint16(1))
	f.Add(append(bytes.Repeat([]byte("C"), 2*MaxLine-1), '\n'), uint16(1)) // a charge on the newline itself
	f.Fuzz(func(t *testing.T, input []byte, chunk uint16) {
		if chunk == 0 {
			chunk = 1
		}
		var want [][]byte
		wantLong, wantCharge := 0, 0
		rest := input
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			if i+1 > MaxLine {
				wantLong++
				wantCharge += 1 + (i+1-MaxLine)/MaxLine
			} else {
				want = append(want, bytes.TrimSuffix(rest[:i], []byte{'\r'}))
				wantCharge++
			}
			rest = rest[i+1:]
		}
		c := &conn{}
		var got [][]byte
		long, charge := 0, 0
		drain := func() {
			for c.hasLine() {
				charge++
				switch line, kind := c.nextLine(); kind {
				case oneLine:
					got = append(got, append([]byte(nil), line...))
				case tooLong:
					long++
				case skipped:
				default:
					t.Fatal("hasLine, but no line")
				}
			}
		}
		for off := 0; off < len(input); off += int(chunk) {
			c.in = append(c.in, input[off:min(off+int(chunk), len(input))]...)
			c.skip()
			if len(c.in) > MaxLine+int(chunk) {
				t.Fatalf("holds %d bytes, with reads of %d", len(c.in), chunk)
			}
			drain()
		}
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("line %d: %q, want %q", i, got[i], want[i])
			}
		}
		// The unfinished line at the end may already be known too long
		// and partly charged; the finished ones are charged exactly.
		if long < wantLong || long > wantLong+1 {
			t.Errorf("%d too-long lines, want %d", long, wantLong)
		}
		if charge < wantCharge || charge > wantCharge+1+len(rest)/MaxLine {
			t.Errorf("charged %d lines, want %d (and the unfinished line's)", charge, wantCharge)
		}
	})
}
