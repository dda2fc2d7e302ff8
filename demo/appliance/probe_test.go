package appliance

import (
	"testing"
	"time"
)

func TestLongestOverlap(t *testing.T) {
	t0 := time.Unix(100, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	trips := []trip{
		{at(0), at(1)},     // before the hand-off
		{at(9), at(30)},    // in flight when it started: 21 ms
		{at(12), at(14)},   // during it
		{at(40), at(41)},   // after it
		{at(50), at(2050)}, // long, but after
	}
	start, end := at(10), at(20)
	if g := longestOverlap(trips, time.Time{}, start, end, at(3000)); g != 21*time.Millisecond {
		t.Fatalf("gap %v, want 21ms", g)
	}
	// A round trip still waiting counts until now.
	if g := longestOverlap(trips, at(15), start, end, at(515)); g != 500*time.Millisecond {
		t.Fatalf("gap with a round trip waiting: %v, want 500ms", g)
	}
	// One that started after the hand-off does not.
	if g := longestOverlap(trips[:1], at(25), start, end, at(525)); g != 0 {
		t.Fatalf("gap %v, want none", g)
	}
}

func TestChatLine(t *testing.T) {
	for _, tc := range []struct {
		line, from, text string
		ok               bool
	}{
		{"> PRIVMSG #lab :lab-bot 1: hello", "ada", "lab-bot 1: hello", true},
		{":bob!bob@192.0.2.10 PRIVMSG #lab :lab-bot 7: hi", "bob", "lab-bot 7: hi", true},
		{":sockshift 001 ada :Welcome", "", "", false},
		{"> PING :lab-3", "", "", false},
		{":bob!bob@x PRIVMSG ada :private", "", "", false},
	} {
		from, text, ok := chatLine("ada", tc.line)
		if from != tc.from || text != tc.text || ok != tc.ok {
			t.Errorf("chatLine(%q) = %q, %q, %v; want %q, %q, %v", tc.line, from, text, ok, tc.from, tc.text, tc.ok)
		}
	}
}
