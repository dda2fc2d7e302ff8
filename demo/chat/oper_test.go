package chat_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/chat"
)

// opers is a configuration with one server operator, under the name and
// password irctest's configurations give the servers it starts.
var opers = map[string]string{"operuser": "operpassword"}

// OPER (RFC 2812 3.1.4, modern.ircdocs.horse): 491 on a server without
// operators; 464 for a wrong password or an unknown name; 381 and MODE +o
// on success. An operator shows as * in WHO (irctest testWhoNickOper), 313
// in WHOIS (testWhoisNumerics[oper]) and in 252 (testLuserOpers); MODE -o
// ends it, and +o from MODE is ignored.
func TestOper(t *testing.T) {
	none := serve(t, nil).user("alice")
	none.send("OPER operuser operpassword")
	none.expect("491", "alice")

	l := serve(t, &chat.Config{Operators: opers})
	a := l.user("alice")
	b := l.user("bob")
	a.send("OPER operuser wrong")
	a.expect("464", "alice")
	a.send("OPER nobody operpassword")
	a.expect("464", "alice")
	a.send("OPER operuser")
	a.expect("461", "alice OPER")
	b.send("MODE bob +o")
	if got := b.sync(); len(got) != 0 {
		t.Errorf("MODE bob +o answered %v; want it ignored", commands(got))
	}
	b.send("MODE bob")
	b.expect("221", "bob +")
	b.send("LUSERS")
	b.expect("252", "bob 0")

	a.send("OPER operuser operpassword")
	a.expect("MODE", "alice +o")
	a.expect("381", "alice")
	a.send("MODE alice")
	a.expect("221", "alice +o")
	b.send("WHO alice")
	b.expect("352", "bob * alice 127.0.0.1 sockshift alice H* 0")
	a.send("AWAY :out")
	a.expect("306")
	b.send("WHO ali*")
	b.expect("352", "bob * alice 127.0.0.1 sockshift alice G* 0")
	b.send("WHO * o")
	b.expect("352", "bob * alice")
	if got := b.sync(); len(got) != 1 || got[0].Command != "315" {
		t.Errorf("WHO * o: after alice, %v; want only 315", commands(got))
	}
	a.join("#lab")
	b.join("#lab")
	b.send("WHO #lab")
	b.expect("352", "bob #lab alice 127.0.0.1 sockshift alice G*@")
	b.send("WHOIS alice")
	b.expect("313", "bob alice")
	b.send("LUSERS")
	b.expect("252", "bob 1")

	a.send("MODE alice -o")
	a.expect("MODE", "alice -o")
	b.send("WHOIS alice")
	b.expect("312", "bob alice")
	for _, m := range b.sync() {
		if m.Command == "313" {
			t.Error("313 after MODE -o")
		}
	}
	b.send("LUSERS")
	b.expect("252", "bob 0")
}

// INFO (RFC 2812 3.4.10, irctest info.py): 371 lines and 374, for this
// server's name, a mask of it, or a nick on it; 402 for another server.
func TestInfo(t *testing.T) {
	l := serve(t, &chat.Config{ServerName: "My.Little.Server"})
	a := l.user("nick")
	for _, target := range []string{"", " My.Little.Server", " *little*", " nick"} {
		a.send("%s", "INFO"+target)
		a.expect("371", "nick")
		got := a.sync()
		if len(got) == 0 || got[len(got)-1].Command != "374" {
			t.Errorf("INFO%s: %v, want 371s and 374", target, commands(got))
		}
		for _, m := range got[:max(0, len(got)-1)] {
			if m.Command != "371" || m.Params[0] != "nick" {
				t.Errorf("INFO%s: %v among the 371s", target, m)
			}
		}
	}
	for _, target := range []string{"invalid.server.example", "invalidserver"} {
		a.send("INFO %s", target)
		a.expect("402", "nick "+target)
		if got := a.sync(); len(got) != 0 {
			t.Errorf("INFO %s: then %v", target, commands(got))
		}
	}
}

// A server password (RFC 2812 3.1.1, irctest
// PasswordedConnectionRegistrationTestCase): PASS before NICK and USER
// registers; none, a wrong one or one sent too late gets 464, then ERROR,
// and the connection closes.
func TestServerPassword(t *testing.T) {
	l := serve(t, &chat.Config{Password: "testpassword"})
	ok := l.dial("foo")
	ok.send("PASS testpassword")
	ok.register()
	ok.send("PASS testpassword")
	ok.expect("462", "foo")

	for name, lines := range map[string][]string{
		"no PASS":    {"NICK bar", "USER bar * * :B"},
		"wrong PASS": {"PASS testpasswordgarbage", "NICK bar", "USER bar * * :B"},
		"PASS late":  {"NICK bar", "USER bar * * :B", "PASS testpassword"},
	} {
		c := l.dial("bar")
		for _, line := range lines {
			c.send("%s", line)
		}
		c.expect("464", "*")
		c.expect("ERROR")
		deadline := time.Now().Add(5 * time.Second)
		for c.readErr() == nil && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if c.readErr() == nil {
			t.Errorf("%s: the connection stayed open", name)
		}
		if got := c.messages("001"); len(got) != 0 {
			t.Errorf("%s: registered", name)
		}
	}
	// The nick was never taken by those refused.
	ok.send("WHO bar")
	if got := ok.sync(); len(got) != 1 || got[0].Command != "315" {
		t.Errorf("WHO bar: %v", commands(got))
	}
}

// Secret (+s) and private (+p) channels (RFC 2812 3.2.3, 3.2.5, 4.2.6):
// their 353 says @ or *; to those outside them, LIST, NAMES (with or
// without a channel), WHOIS and WHO do not show them; members see them
// as before.
func TestSecretChannels(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#pub", "#sec", "#prv")
	b := l.user("bob", "#sec", "#prv")
	out := l.user("olga")
	a.send("MODE #sec +s")
	b.expect("MODE", "#sec +s")
	a.send("MODE #prv +p")
	b.expect("MODE", "#prv +p")
	a.send("MODE #sec")
	a.expect("324", "alice #sec +ns")

	b.send("NAMES #sec")
	b.expect("353", "bob @ #sec @alice bob")
	b.send("NAMES #prv")
	b.expect("353", "bob * #prv @alice bob")
	b.send("NAMES #pub")
	b.expect("353", "bob = #pub @alice")

	out.send("NAMES #sec,#prv")
	out.expect("366", "olga #sec,#prv")
	out.send("NAMES")
	out.expect("353", "olga = #pub @alice")
	out.send("LIST")
	out.expect("322", "olga #pub 1")
	out.expect("323")
	out.send("LIST #sec,#prv")
	only(t, commands(out.sync()), "323")
	out.send("WHO #sec")
	only(t, commands(out.sync()), "315")
	out.send("WHOIS bob")
	only(t, commands(out.sync()), "311", "312", "318")
	out.send("WHOIS alice")
	out.expect("319", "olga alice @#pub")

	// Members see them everywhere.
	b.send("LIST")
	for _, ch := range []string{"#prv", "#pub", "#sec"} {
		b.expect("322", "bob "+ch)
	}
	b.send("NAMES")
	for _, ch := range []string{"* #prv", "= #pub", "@ #sec"} {
		b.expect("353", "bob "+ch)
	}
	b.send("WHOIS alice")
	b.expect("319", "bob alice @#prv @#pub @#sec")
	b.send("WHO #sec")
	b.expect("352", "bob #sec alice")

	a.send("MODE #sec -s")
	a.expect("MODE", "#sec -s")
	out.send("LIST #sec")
	out.expect("322", "olga #sec 2")
}

// WHOX (IRCv3, irctest who.py testWhox*): "WHO mask %fields[,token]"
// answers 354 with the fields asked, in the specification's order
// whatever the order asked; 005 says WHOX.
func TestWhox(t *testing.T) {
	l := serve(t, &chat.Config{ServerName: "My.Little.Server"})
	a := l.dial("coolNick")
	a.send("NICK coolNick")
	a.send("USER myusernam 0 * :My UniqueReal Name")
	a.expect("005", "coolNick", "TARGMAX=JOIN:4,KICK:4,LIST:4,NAMES:4,NOTICE:4,PART:4,PRIVMSG:4,WHOIS:4 TOPICLEN=300 WHOX")
	a.join("#chan")
	b := l.user("otherNick", "#chan")

	full := []string{"otherNick", "123", "*", "myusernam", "127.0.0.1", "127.0.0.1", "My.Little.Server", "coolNick", "H", "0", "0", "0", "n/a", "My UniqueReal Name"}
	for _, fields := range []string{"tcuihsnfdlaor", "roaldfnshiuct"} {
		b.send("WHO coolNick %%%s,123", fields)
		m := b.expect("354")
		if strings.Join(m.Params, "|") != strings.Join(full, "|") {
			t.Errorf("WHO coolNick %%%s,123: %q\nwant %q", fields, m.Params, full)
		}
		b.expect("315", "otherNick coolNick")
	}
	b.send("WHO coolNick %%tn")
	b.expect("354", "otherNick 0 coolNick") // no token given: 0
	b.send("WHO #chan %%nf")
	b.expect("354", "otherNick coolNick H@")
	b.expect("354", "otherNick otherNick H")
	b.expect("315", "otherNick #chan")
	b.send("WHO coolNick %%na")
	b.expect("354", "otherNick coolNick 0")
	b.send("WHO coolNick")
	b.expect("352", "otherNick * myusernam")
}

// NAMES #a,#b (modern.ircdocs.horse, irctest
// testNamesMultipleChannels2812): each channel's 353, then one 366 that
// names them as asked.
func TestNamesSeveralChannels(t *testing.T) {
	l := serve(t, nil)
	a := l.user("nick1", "#chan1", "#chan2")
	a.send("NAMES #chan1,#chan2,#none")
	a.expect("353", "nick1 = #chan1 @nick1")
	a.expect("353", "nick1 = #chan2 @nick1")
	a.expect("366", "nick1 #chan1,#chan2,#none")
	if got := a.sync(); len(got) != 0 {
		t.Errorf("then %v", commands(got))
	}
}

// What this adds is state that moves: a server operator, +s and +p, a
// password given by a client still registering, and LUSERS' peak survive
// two hand-offs (A to B and back) and keep working; a wrong password is
// still refused.
func TestOperAndSecretMove(t *testing.T) {
	cfg := &chat.Config{Password: "pw", Operators: opers}
	l1 := serve(t, cfg)
	l2 := serve(t, cfg)
	reg := func(l *local, nick string, chans ...string) *ircClient {
		c := l.dial(nick)
		c.send("PASS pw")
		c.register()
		for _, ch := range chans {
			c.join(ch)
		}
		return c
	}
	a := reg(l1, "alice", "#sec", "#prv")
	b := reg(l1, "bob")
	gone := reg(l1, "carl")
	gone.send("QUIT")
	gone.expect("ERROR")
	a.send("OPER operuser operpassword")
	a.expect("381")
	a.send("MODE #sec +s")
	a.expect("MODE", "#sec +s")
	a.send("MODE #prv +p")
	a.expect("MODE", "#prv +p")
	good := l1.dial("good")
	good.send("PASS pw")
	good.send("NICK good")
	bad := l1.dial("bad")
	bad.send("PASS nope")
	bad.send("NICK bad")
	good.sync()
	bad.sync()

	for i, hop := range [][2]*local{{l1, l2}, {l2, l1}} {
		if n := moveAll(t, hop[0].s, hop[1].s); n != 4 {
			t.Fatalf("hand-off %d moved %d connections, want 4", i, n)
		}
		b.send("WHOIS alice")
		b.expect("313", "bob alice")
		for _, m := range b.sync() {
			if m.Command == "319" {
				t.Errorf("hand-off %d: bob sees alice's channels: %v", i, m.Params)
			}
		}
		b.send("LIST")
		b.expect("323")
		b.send("NAMES")
		b.expect("366")
		for _, m := range append(b.messages("322"), b.messages("353")...) {
			t.Errorf("hand-off %d: bob sees %v", i, m.Params)
		}
		a.send("MODE alice")
		a.expect("221", "alice +o")
		a.send("LUSERS")
		a.expect("265", "alice Current local users 2, max 3") // the peak moved too
		a.send("NAMES #sec,#prv")
		a.expect("353", "alice @ #sec @alice")
		a.expect("353", "alice * #prv @alice")
	}
	good.send("USER good 0 * :g")
	good.expect("001", "good")
	bad.send("USER bad 0 * :b")
	bad.expect("464", "*")
	bad.expect("ERROR")
	a.send("MODE alice -o")
	a.expect("MODE", "alice -o")
	b.send("LUSERS")
	b.expect("252", "bob 0")
}
