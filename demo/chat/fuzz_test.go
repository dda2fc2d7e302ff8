package chat

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Message
	}{
		{"NICK alice", Message{Command: "NICK", Params: []string{"alice"}}},
		{"privmsg #lab :hello there", Message{Command: "PRIVMSG", Params: []string{"#lab", "hello there"}}},
		{":a!b@c PRIVMSG  #lab  :", Message{Prefix: "a!b@c", Command: "PRIVMSG", Params: []string{"#lab", ""}}},
		{"001 x y", Message{Command: "001", Params: []string{"x", "y"}}},
		{"A 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", Message{Command: "A", Params: []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15 16"}}},
	} {
		got, err := ParseLine(tc.line)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseLine(%q) = %#v, %v; want %#v", tc.line, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "   ", ":pfx", "12 x", "NI\x00CK a", "PRIV-MSG x", ": NICK", strings.Repeat("A", 511)} {
		if m, err := ParseLine(bad); err == nil {
			t.Errorf("ParseLine(%q) = %#v, want an error", bad, m)
		}
	}
}

// FuzzParseLine: never a panic, and what parses formats back to a line
// that parses the same.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"NICK alice", ":a!b@c PRIVMSG #lab :hi there", "PING :x", "JOIN #a,#b", ":x 001 y :z", "A : :", "CMD a  b   :c d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := ParseLine(line)
		if err != nil {
			return
		}
		s := m.String()
		m2, err := ParseLine(s)
		if err != nil {
			t.Fatalf("%q parsed to %#v, formatted %q, which does not parse: %v", line, m, s, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("%q -> %#v -> %q -> %#v", line, m, s, m2)
		}
	})
}

func sampleShared() *sharedState {
	return &sharedState{
		Users: []userSnap{{"alice", "al", "Alice A", "192.0.2.10", "", false, true}, {"bob", "b", "", "192.0.2.10", "lunch", true, false}},
		Channels: []chanSnap{{Name: "#lab", Topic: "t", TopicBy: "alice", TopicAt: 1700000000,
			Created: 1690000000, Modes: modeT | modeN | modeI | modeM | modeS | modeP, Key: "s3cret", Limit: 10,
			Members: []string{"alice", "bob"}, Ops: []string{"alice"}, Voices: []string{"bob"}, Invites: []string{"carol"},
			History: []historyLine{{"bob", "hi", false}, {"alice", "note", true}}}},
		MaxUsers: 7,
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	st := sampleShared()
	got, err := decodeShared(st.encode())
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("shared: %#v, %v", got, err)
	}
	cs := &connState{Registered: true, Nick: "alice", User: "al", Real: "A", In: []byte("PRIVMSG #lab :ha"),
		Discard: true, Skipped: 300, LongLine: 9000, CapHeld: true, PassOK: true,
		Out: []byte(":x PING :y\r\n"), Inherited: 4, PingOutstanding: true, Junk: 3, BytesIn: 10, BytesOut: 20}
	gotc, err := decodeConn(cs.encode())
	if err != nil || !reflect.DeepEqual(gotc, cs) {
		t.Fatalf("conn: %#v, %v", gotc, err)
	}
	// Inconsistent states are refused.
	for name, bad := range map[string]*sharedState{
		"unknown member":   {Users: st.Users[:1], Channels: st.Channels},
		"repeated nick":    {Users: []userSnap{st.Users[0], st.Users[0]}},
		"bad channel":      {Users: st.Users, Channels: []chanSnap{{Name: "lab", Members: []string{"bob"}}}},
		"empty channel":    {Users: st.Users, Channels: []chanSnap{{Name: "#x"}}},
		"op not member":    {Users: st.Users, Channels: []chanSnap{{Name: "#x", Members: []string{"bob"}, Ops: []string{"alice"}}}},
		"unknown mode":     {Users: st.Users, Channels: []chanSnap{{Name: "#x", Members: []string{"bob"}, Modes: 0x80}}},
		"bad key":          {Users: st.Users, Channels: []chanSnap{{Name: "#x", Members: []string{"bob"}, Key: "a b"}}},
		"bad invite":       {Users: st.Users, Channels: []chanSnap{{Name: "#x", Members: []string{"bob"}, Invites: []string{"9x"}}}},
		"voice not member": {Users: st.Users, Channels: []chanSnap{{Name: "#x", Members: []string{"bob"}, Voices: []string{"alice"}}}},
		"repeated op":      {Users: st.Users, Channels: []chanSnap{{Name: "#x", Members: []string{"bob"}, Ops: []string{"bob", "BOB"}}}},
		"bad away":         {Users: []userSnap{{"bob", "b", "", "h", "a\nb", false, false}}},
		"peak over bound":  {MaxUsers: 1 << 30},
	} {
		if _, err := decodeShared(bad.encode()); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	huge := []byte{sharedVersion, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}
	if _, err := decodeShared(huge); err == nil {
		t.Error("a count over the limit decoded")
	}
}

// FuzzSnapshot: decoding never panics and never accepts what it would not
// write the same way.
func FuzzSnapshot(f *testing.F) {
	f.Add(sampleShared().encode(), (&connState{Nick: "x", In: []byte("NI")}).encode())
	f.Add([]byte{}, []byte{connVersion})
	f.Add(sampleShared().encode(), (&connState{Registered: true, Nick: "x", User: "u", Discard: true, Skipped: 7,
		LongLine: 9000, CapHeld: true, Out: []byte("abc"), Inherited: 2}).encode())
	f.Fuzz(func(t *testing.T, shared, conn []byte) {
		if st, err := decodeShared(shared); err == nil && !bytes.Equal(st.encode(), shared) {
			t.Fatal("shared: decode/encode is not a round trip")
		}
		if cs, err := decodeConn(conn); err == nil && !bytes.Equal(cs.encode(), conn) {
			t.Fatal("conn: decode/encode is not a round trip")
		}
	})
}

// String alone decides the colon: free text always trailing, names and
// modes bare unless they need one.
func TestStringTrailing(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Message{Prefix: "a!a@h", Command: "PRIVMSG", Params: []string{"#lab", "hello"}}, ":a!a@h PRIVMSG #lab :hello"},
		{Message{Command: "NOTICE", Params: []string{"bob", "x"}}, "NOTICE bob :x"},
		{Message{Command: "TOPIC", Params: []string{"#lab", "t"}}, "TOPIC #lab :t"},
		{Message{Command: "PART", Params: []string{"#lab", "bye"}}, "PART #lab :bye"},
		{Message{Command: "QUIT", Params: []string{"gone"}}, "QUIT :gone"},
		{Message{Command: "ERROR", Params: []string{"x"}}, "ERROR :x"},
		{Message{Command: "001", Params: []string{"alice", "Welcome"}}, "001 alice :Welcome"},
		{Message{Command: "FUTURE", Params: []string{"a", "b"}}, "FUTURE a :b"},
		{Message{Command: "JOIN", Params: []string{"#lab"}}, "JOIN #lab"},
		{Message{Command: "NICK", Params: []string{"bob"}}, "NICK bob"},
		{Message{Command: "324", Params: []string{"a", "#lab", "+nt"}}, "324 a #lab +nt"},
		{Message{Command: "MODE", Params: []string{"#lab", ""}}, "MODE #lab :"},
		{Message{Command: "MODE", Params: []string{"#lab", ":x"}}, "MODE #lab ::x"},
		{Message{Command: "AWAY"}, "AWAY"},
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"eva*", "evan", true}, {"*", "", true}, {"e?an", "evan", true}, {"*n", "evan", true},
		{"e*a*n", "evaaan", true}, {"[a]*", "[a]b", true}, {"eva", "evan", false}, {"*x", "evan", false},
		{"?", "", false}, {"a*b", "acbd", false},
	} {
		if got := globMatch(tc.p, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}
