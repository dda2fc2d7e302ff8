package chat_test

import (
	"testing"
)

// Free text goes out as a trailing parameter even when it is one word:
// clients read text from the trailing parameter (issue 16: ii showed
// "<alice> " for a one-word line). Each line is checked byte for byte.
func TestOneWordTextIsTrailing(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	a.expect("JOIN", "#lab") // bob's

	a.send("PRIVMSG #lab hello")
	b.expectRaw(":alice!alice@127.0.0.1 PRIVMSG #lab :hello")
	a.send("NOTICE bob :psst")
	b.expectRaw(":alice!alice@127.0.0.1 NOTICE bob :psst")
	a.send("TOPIC #lab word")
	b.expectRaw(":alice!alice@127.0.0.1 TOPIC #lab :word")
	b.send("TOPIC #lab")
	b.expectRaw(":sockshift 332 bob #lab :word")
	b.send("LIST")
	b.expectRaw(":sockshift 322 bob #lab 2 :word")
	b.send("PING one")
	b.expectRaw(":sockshift PONG sockshift :one")
	b.send("NICK robert")
	a.expectRaw(":bob!bob@127.0.0.1 NICK robert")
	b.send("PART #lab bye")
	a.expectRaw(":robert!bob@127.0.0.1 PART #lab :bye")
	b.send("JOIN #lab")
	a.expectRaw(":robert!bob@127.0.0.1 JOIN #lab")
	b.send("QUIT gone")
	a.expectRaw(":robert!bob@127.0.0.1 QUIT :Quit: gone")
	b.expectRaw("ERROR :Closing Link: 127.0.0.1 (Quit: gone)")
	a.send("MODE #lab")
	a.expectRaw(":sockshift 324 alice #lab +n")
	a.send("FROB")
	a.expectRaw(":sockshift 421 alice FROB :Unknown command")
}
