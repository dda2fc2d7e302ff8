package chat_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/lab"
)

// chatHost is the address the real clients dial for the chat: its own
// service address (labUser dials the same through env.DialChat).
func chatHost(*labtest.Env) string { return lab.ChatVIP.String() }

// realClient is an IRC program from Debian, driven as its user would:
// lines typed into #lab, commands, and what it shows for #lab.
type realClient interface {
	say(text string)      // type a line into #lab and send it
	typeHalf(text string) // type, without sending
	finish(text string)   // type the rest and send the line
	command(cmd string)   // a command as the user types it, e.g. "/topic #lab x"
	shows(from, text string) int
	transcript() string
	alive() error
}

// lineCount counts the lines of transcript that match the client's way of
// showing "from said text", whole: nothing before the nick but the time,
// nothing after the text.
func lineCount(transcript string, re *regexp.Regexp) int {
	n := 0
	for _, l := range strings.Split(transcript, "\n") {
		if re.MatchString(strings.TrimRight(l, " \r")) {
			n++
		}
	}
	return n
}

// clientThroughHandOffs is the story every real client goes through:
// one-word and multi-word lines both ways on A, a half-typed line on each
// side across the switch to B, a topic change each way and a nick change
// on B, a late joiner, back to A, more lines. At the end each side has
// seen every line of the other once, whole, and nobody was disconnected.
func clientThroughHandOffs(t *testing.T, env *labtest.Env, nick string, rc realClient) {
	peer := labUser(t, env, "peer", "#lab")
	waitNames(t, peer, nick)

	var toClient, fromClient []string // texts, each unique
	exchange := func(round int) {
		t.Helper()
		for _, text := range []string{fmt.Sprintf("hello%d", round), fmt.Sprintf("peer says %d in many words", round)} {
			peer.send("PRIVMSG #lab :%s", text)
			toClient = append(toClient, text)
			waitShows(t, rc, "peer", text)
		}
		for _, text := range []string{fmt.Sprintf("ciao%d", round), fmt.Sprintf("client says %d in many words", round)} {
			rc.say(text)
			fromClient = append(fromClient, text)
			peer.expect("PRIVMSG", "#lab "+text)
		}
	}
	handOff := func(from, to string, conns int) {
		t.Helper()
		res := env.HandOff(from, to)
		if !res.OK || res.Connections != conns {
			t.Fatalf("hand-off %s->%s: ok %v, %d connections (want %d): %s", from, to, res.OK, res.Connections, conns, res.Error)
		}
	}

	exchange(0)

	// Half lines across the switch: the client's user is typing, the
	// peer's bytes sit in A's buffers when A freezes.
	rc.typeHalf("half-")
	peer.write("PRIVMSG #lab :peerhalf-")
	time.Sleep(100 * time.Millisecond)
	handOff("a", "b", 2)
	rc.finish("way")
	peer.write("way\r\n")
	fromClient = append(fromClient, "half-way")
	toClient = append(toClient, "peerhalf-way")
	peer.expect("PRIVMSG", "#lab half-way")
	waitShows(t, rc, "peer", "peerhalf-way")

	exchange(1)
	rc.command("/topic #lab the topic from the client")
	peer.expect("TOPIC", "#lab the topic from the client")
	peer.send("TOPIC #lab :peertopic")
	waitTranscript(t, rc, "peertopic")
	newNick := nick + "2"
	rc.command("/nick " + newNick)
	if m := peer.expect("NICK", newNick); !strings.HasPrefix(m.Prefix, nick+"!") {
		t.Errorf("NICK from %q, want %s", m.Prefix, nick)
	}
	exchange(2)

	late := labUser(t, env, "late")
	late.send("JOIN #lab")
	late.expect("332", "late #lab peertopic")
	// The client joined first: it is the operator, through the hand-offs.
	names := late.expect("353", "late = #lab").Params[3]
	if got := strings.Fields(names); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"@" + newNick, "late", "peer"}) {
		t.Errorf("the late joiner sees %q", names)
	}
	late.send("PRIVMSG #lab :late and whole")
	waitShows(t, rc, "late", "late and whole")

	handOff("b", "a", 3)
	exchange(3)

	for _, text := range toClient {
		if n := rc.shows("peer", text); n != 1 {
			t.Errorf("the client shows %q from peer %d times, want once", text, n)
		}
	}
	if n := rc.shows("late", "late and whole"); n != 1 {
		t.Errorf("the client shows late's line %d times, want once", n)
	}
	var got []string
	for _, m := range peer.messages("PRIVMSG") {
		if strings.HasPrefix(m.Prefix, nick+"!") || strings.HasPrefix(m.Prefix, newNick+"!") {
			got = append(got, m.Params[1])
		}
	}
	for _, text := range fromClient {
		if n := strings.Count("\x00"+strings.Join(got, "\x00")+"\x00", "\x00"+text+"\x00"); n != 1 {
			t.Errorf("peer got %q %d times, want once", text, n)
		}
	}
	if len(got) != len(fromClient) {
		t.Errorf("peer got %d lines, the client sent %d: %q", len(got), len(fromClient), got)
	}
	if err := rc.alive(); err != nil {
		t.Errorf("the client: %v\n%s", err, rc.transcript())
	}
	for _, c := range []*ircClient{peer, late} {
		c.roundTrip("still-" + c.nick)
		if err := c.readErr(); err != nil {
			t.Errorf("%s: %v", c.nick, err)
		}
		if q := slices.Concat(c.messages("QUIT"), c.messages("ERROR")); len(q) > 0 {
			t.Errorf("%s saw %v", c.nick, q[0])
		}
	}
	late.send("WHOIS %s", newNick)
	late.expect("311", "late "+newNick)

	// The client runs #lab (it joined first): its operator commands work
	// on whichever server holds it, and what they set moves.
	rc.command("/op peer")
	peer.expect("MODE", "#lab +o peer")
	rc.command("/mode #lab +t")
	peer.expect("MODE", "#lab +t")
	late.send("TOPIC #lab :late's topic")
	late.expect("482", "late #lab")
	handOff("a", "b", 3)
	rc.command("/topic #lab topic under plus t")
	peer.expect("TOPIC", "#lab topic under plus t")
	peer.send("TOPIC #lab :the peer runs it too") // its +o moved
	waitTranscript(t, rc, "the peer runs it too")
	rc.command("/away gone for tea")
	waitAway(t, peer, newNick, "gone for tea")
	handOff("b", "a", 3)
	waitAway(t, peer, newNick, "gone for tea") // the away message moved
	rc.command("/away")
	waitAway(t, peer, newNick, "")
	rc.command("/kick late bye now")
	late.expect("KICK", "#lab late bye now")
	peer.expect("KICK", "#lab late bye now")
	if err := rc.alive(); err != nil {
		t.Errorf("the client, after its operator commands: %v\n%s", err, rc.transcript())
	}
}

// waitAway waits until c's WHOIS of nick shows it away with this message
// (or, for "", here): a client's /away is typed, not synchronous.
func waitAway(t *testing.T, c *ircClient, nick, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.send("WHOIS %s", nick)
		var away string
		for _, m := range c.sync() {
			if m.Command == "301" && len(m.Params) > 2 {
				away = m.Params[2]
			}
		}
		if away == msg {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: WHOIS %s shows away %q, want %q", c.nick, nick, away, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitNames(t *testing.T, c *ircClient, nick string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c.send("NAMES #lab")
		m := c.expect("353", c.nick+" = #lab")
		c.expect("366")
		if slices.Contains(strings.Fields(strings.ReplaceAll(m.Params[3], "@", "")), nick) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never joined #lab (NAMES %q)", nick, m.Params[3])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitShows(t *testing.T, rc realClient, from, text string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for rc.shows(from, text) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the client never showed <%s> %q; it shows:\n%s", from, text, rc.transcript())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitTranscript(t *testing.T, rc realClient, text string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(rc.transcript(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("the client never showed %q; it shows:\n%s", text, rc.transcript())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
