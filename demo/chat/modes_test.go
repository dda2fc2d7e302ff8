package chat_test

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Channel operators (RFC 2812 3.2.3, modern.ircdocs.horse "Channel
// modes"): the first joiner is operator, shown as @ in NAMES, WHO and
// WHOIS; MODE +o/-o by an operator; 482 for anyone else; 441 for a nick
// not on the channel.
func TestChannelOperators(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	b.send("NAMES #lab")
	b.expect("353", "bob = #lab @alice bob")
	b.send("WHO #lab")
	b.expect("352", "bob #lab alice 127.0.0.1 sockshift alice H@")
	b.expect("352", "bob #lab bob 127.0.0.1 sockshift bob H 0")
	b.send("WHOIS alice")
	b.expect("319", "bob alice @#lab")

	b.send("MODE #lab +o bob")
	b.expect("482", "bob #lab")
	a.send("MODE #lab +o nobody")
	a.expect("401", "alice nobody")
	c := l.user("carol")
	a.send("MODE #lab +o carol")
	a.expect("441", "alice carol #lab")
	a.send("MODE #lab +o bob")
	for _, u := range []*ircClient{a, b} {
		if m := u.expect("MODE", "#lab +o bob"); !strings.HasPrefix(m.Prefix, "alice!") {
			t.Errorf("MODE from %q", m.Prefix)
		}
	}
	b.send("MODE #lab -o alice")
	a.expect("MODE", "#lab -o alice")
	a.send("MODE #lab +o alice")
	a.expect("482", "alice #lab")
	b.send("NAMES #lab")
	b.expect("353", "bob = #lab alice @bob")
	if got := c.sync(); len(got) != 0 {
		t.Errorf("carol, outside, heard %v", commands(got))
	}
}

// KICK (RFC 2812 3.2.8): an operator removes a member, everyone sees it;
// 482 for a non-operator, 441 for a nick not there, 442 for a kicker
// outside, 403 for no channel.
func TestKick(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	c := l.user("carol", "#lab")
	b.send("KICK #lab carol")
	b.expect("482", "bob #lab")
	a.send("KICK #lab dave")
	a.expect("441", "alice dave #lab")
	a.send("KICK #nope bob")
	a.expect("403", "alice #nope")
	d := l.user("dave")
	d.send("KICK #lab bob")
	d.expect("442", "dave #lab")
	a.send("KICK #lab carol :enough")
	for _, u := range []*ircClient{a, b, c} {
		u.expect("KICK", "#lab carol enough")
	}
	c.send("PRIVMSG #lab :still here?")
	c.expect("404", "carol #lab")
	a.send("KICK #lab bob")
	b.expect("KICK", "#lab bob alice") // the reason defaults to the kicker
	a.send("NAMES #lab")
	a.expect("353", "alice = #lab @alice")
}

// +t (topic by operators only), +n (no messages from outside, the
// default; -n lets them in) and 324/329 (modes and creation time).
func TestTopicLockAndNoExternal(t *testing.T) {
	l := serve(t, nil)
	before := time.Now().Unix()
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	out := l.user("olga")
	a.send("MODE #lab")
	a.expect("324", "alice #lab +n")
	created, err := strconv.ParseInt(a.expect("329", "alice #lab").Params[2], 10, 64)
	if err != nil || created < before || created > time.Now().Unix() {
		t.Errorf("329 says created %d (%v), want about %d", created, err, before)
	}
	b.send("TOPIC #lab :anyone may")
	a.expect("TOPIC", "#lab anyone may")
	a.send("MODE #lab +t")
	b.expect("MODE", "#lab +t")
	b.send("TOPIC #lab :not now")
	b.expect("482", "bob #lab")
	a.send("TOPIC #lab :the operator may")
	b.expect("TOPIC", "#lab the operator may")

	out.send("PRIVMSG #lab :from outside")
	out.expect("404", "olga #lab")
	a.send("MODE #lab -n")
	b.expect("MODE", "#lab -n")
	out.send("PRIVMSG #lab :from outside")
	b.expect("PRIVMSG", "#lab from outside")
	a.send("MODE #lab")
	a.expect("324", "alice #lab +t")
	a.send("MODE #lab +x")
	a.expect("472", "alice x")
}

// +i with INVITE (RFC 2812 3.2.7): 473 without an invite, 341 to the
// inviter and INVITE to the invitee, who may then join once; 443 for one
// already there; 482 for a non-operator past +i.
func TestInviteOnly(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	c := l.user("carol")
	a.send("MODE #lab +i")
	b.expect("MODE", "#lab +i")
	c.send("JOIN #lab")
	c.expect("473", "carol #lab")
	b.send("INVITE carol #lab")
	b.expect("482", "bob #lab")
	a.send("INVITE bob #lab")
	a.expect("443", "alice bob #lab")
	a.send("INVITE nobody #lab")
	a.expect("401", "alice nobody")
	a.send("INVITE carol #lab")
	a.expect("341", "alice carol #lab")
	if m := c.expect("INVITE", "carol #lab"); !strings.HasPrefix(m.Prefix, "alice!") {
		t.Errorf("INVITE from %q", m.Prefix)
	}
	c.join("#lab")
	b.expect("JOIN", "#lab")
	c.send("PART #lab")
	c.send("JOIN #lab")
	c.expect("473", "carol #lab") // an invite is good once
}

// +k (key) and +l (limit): 475 without the right key, 471 past the
// limit; the key shows in 324 to members only.
func TestKeyAndLimit(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	a.send("MODE #lab +kl s3cret 2")
	a.expect("MODE", "#lab +kl s3cret 2")
	b := l.user("bob")
	b.send("JOIN #lab")
	b.expect("475", "bob #lab")
	b.send("JOIN #lab wrong")
	b.expect("475", "bob #lab")
	b.send("MODE #lab")
	b.expect("324", "bob #lab +nkl * 2")
	b.send("JOIN #lab s3cret")
	b.expect("366", "bob #lab")
	c := l.user("carol")
	c.send("JOIN #lab s3cret")
	c.expect("471", "carol #lab")
	a.send("MODE #lab")
	a.expect("324", "alice #lab +nkl s3cret 2")
	a.send("MODE #lab -lk *")
	a.expect("MODE", "#lab -lk *")
	c.join("#lab")
	a.send("MODE #lab +k")
	a.expect("461", "alice MODE")
	a.send("MODE #lab +k :bad,key")
	a.expect("525", "alice #lab")
}

// AWAY (RFC 2812 4.1): 306 and 305 to the user; 301 to whoever messages
// it, and in WHOIS; G instead of H in WHO; '-' in USERHOST.
func TestAway(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	a.send("AWAY :gone fishing")
	a.expect("306", "alice")
	b.send("PRIVMSG alice :are you there?")
	a.expect("PRIVMSG", "alice are you there?")
	b.expect("301", "bob alice gone fishing")
	b.send("NOTICE alice :no reply to notices")
	b.send("WHOIS alice")
	b.expect("301", "bob alice gone fishing")
	b.expect("318", "bob alice")
	b.send("WHO #lab")
	b.expect("352", "bob #lab alice 127.0.0.1 sockshift alice G@")
	b.send("USERHOST alice bob")
	b.expect("302", "bob alice=-alice@127.0.0.1 bob=+bob@127.0.0.1")
	if n := len(b.messages("301")); n != 2 {
		t.Errorf("%d 301 replies, want 2 (a NOTICE gets none)", n)
	}
	a.send("AWAY")
	a.expect("305", "alice")
	b.send("WHO alice")
	b.expect("352", "bob * alice 127.0.0.1 sockshift alice H")
}

// LUSERS, MOTD, VERSION, TIME, ISON and USERHOST (RFC 2812 3.4, 4.8,
// 4.9): each answers with its numeric.
func TestServerQueries(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	l.user("bob", "#lab")
	l.dial("late").roundTrip("connected, not registered")
	a.send("LUSERS")
	a.expect("251", "alice There are 2 users and 0 invisible on 1 servers")
	a.expect("253", "alice 1")
	a.expect("254", "alice 1 channels formed")
	a.expect("255", "alice I have 2 clients and 0 servers")
	a.expect("265", "alice Current local users 2, max 2")
	a.expect("266", "alice Current global users 2, max 2")
	a.send("MOTD")
	a.expect("422", "alice")
	a.send("VERSION")
	a.expect("351", "alice sockshift-chat-1. sockshift")
	a.expect("005", "alice AWAYLEN=")
	a.send("TIME")
	when, err := time.Parse(time.RFC1123, a.expect("391", "alice sockshift").Params[2])
	if err != nil || time.Since(when) > time.Minute || time.Until(when) > time.Minute {
		t.Errorf("TIME says %v (%v)", when, err)
	}
	a.send("ISON bob nobody ALICE")
	a.expect("303", "alice bob alice")
	a.send("ISON nobody")
	if m := a.expect("303", "alice"); m.Params[1] != "" {
		t.Errorf("ISON nobody: %q", m.Params[1])
	}
	a.send("USERHOST nobody")
	a.expect("302", "alice")
	a.send("ISON")
	a.expect("461", "alice ISON")
}

// User modes: MODE nick answers 221 with what is set (nothing, then +i);
// +i hides the user from a WHO of those sharing no channel; an unknown
// mode gets 501; another's modes 502.
func TestUserModes(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice")
	b := l.user("bob")
	a.send("MODE alice")
	if m := a.expect("221", "alice"); m.Params[1] != "+" {
		t.Errorf("221 %q, want +", m.Params[1])
	}
	a.send("MODE alice +i")
	a.expect("MODE", "alice +i")
	a.send("MODE alice")
	a.expect("221", "alice +i")
	a.send("MODE alice +w")
	a.expect("501", "alice")
	a.send("MODE bob")
	a.expect("502", "alice")
	b.send("WHO *")
	for _, m := range b.sync() {
		if m.Command == "352" && m.Params[5] == "alice" {
			t.Error("an invisible user in another's WHO *")
		}
	}
	b.send("LUSERS")
	b.expect("251", "bob There are 1 users and 1 invisible")
	a.join("#lab")
	b.join("#lab")
	b.send("WHO a*")
	b.expect("352", "bob * alice")
}

// CAP (IRCv3 capability negotiation): LS and LIST list nothing, REQ is
// refused, END ends it; registration waits for END once a client
// started, and an unknown subcommand gets 410.
func TestCapNegotiation(t *testing.T) {
	l := serve(t, nil)
	a := l.dial("alice")
	a.send("CAP LS 302")
	if m := a.expect("CAP", "* LS"); len(m.Params) != 3 || m.Params[2] != "" {
		t.Errorf("CAP LS: %q, want an empty list", m.Params)
	}
	a.send("NICK alice")
	a.send("USER alice 0 * :Alice")
	a.send("CAP REQ :sasl")
	a.expect("CAP", "* NAK sasl")
	if got := a.sync(); len(got) != 0 {
		t.Errorf("before CAP END: %v", commands(got))
	}
	a.send("CAP END")
	a.expect("001", "alice")
	a.send("CAP LIST")
	a.expect("CAP", "alice LIST")
	a.send("CAP FROB")
	a.expect("410", "alice FROB")

	// A client that never says CAP registers at once.
	b := l.user("bob")
	b.roundTrip("plain")
}

// Everything the modes add is state that moves: operators, +t +n +i +k
// +l, invites, creation time, away messages and +i users survive two
// hand-offs (A to B and back), and keep working.
func TestModesMove(t *testing.T) {
	l1 := serve(t, nil)
	l2 := serve(t, nil)
	a := l1.user("alice", "#lab")
	b := l1.user("bob", "#lab")
	e := l1.user("erin", "#lab")
	c := l1.user("carol")
	half := l1.dial("half")
	half.send("CAP LS 302")
	half.expect("CAP", "* LS")
	half.send("NICK half")
	half.send("USER half 0 * :h")
	a.send("MODE #lab +tikml s3cret 5")
	b.expect("MODE", "#lab +tikml s3cret 5")
	a.send("MODE #lab +o bob")
	b.expect("MODE", "#lab +o bob")
	a.send("MODE #lab +v erin")
	e.expect("MODE", "#lab +v erin")
	a.send("INVITE carol #lab")
	c.expect("INVITE", "carol #lab")
	b.send("AWAY :in a meeting")
	b.expect("306")
	c.send("MODE carol +i")
	c.expect("MODE", "carol +i")
	a.send("MODE #lab")
	created := a.expect("329", "alice #lab").Params[2]
	a.sync()

	for i, hop := range [][2]*local{{l1, l2}, {l2, l1}} {
		if n := moveAll(t, hop[0].s, hop[1].s); n != 5 {
			t.Fatalf("hand-off %d moved %d connections, want 5", i, n)
		}
		a.send("MODE #lab")
		a.expect("324", "alice #lab +imntkl s3cret 5")
		a.expect("329", "alice #lab "+created)
		a.send("NAMES #lab")
		a.expect("353", "alice = #lab @alice @bob +erin")
		a.send("WHOIS bob")
		a.expect("301", "alice bob in a meeting")
		a.send("WHO #lab")
		a.expect("352", "alice #lab bob 127.0.0.1 sockshift bob G@")
		c.send("MODE carol")
		c.expect("221", "carol +i")
	}
	// Still enforced, and still usable, on the server they came back to.
	d := l1.user("dave")
	d.send("JOIN #lab s3cret")
	d.expect("473", "dave #lab")
	c.send("JOIN #lab s3cret")
	c.expect("366", "carol #lab")
	c.send("TOPIC #lab :not an operator")
	c.expect("482", "carol #lab")
	b.send("KICK #lab carol :bye")
	a.expect("KICK", "#lab carol bye")
	// The client that was negotiating still waits for CAP END.
	if got := half.sync(); len(got) != 0 {
		t.Errorf("half, before CAP END: %v", commands(got))
	}
	half.send("CAP END")
	half.expect("001", "half")
}

// Only what the modes' rules allow goes out of a MODE: a line of many
// parameterised changes stops after chat's MODES limit.
func TestModeParameterLimit(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	for _, n := range []string{"b1", "b2", "b3", "b4", "b5"} {
		l.user(n, "#lab")
	}
	a.send("MODE #lab +ooooo b1 b2 b3 b4 b5")
	m := a.expect("MODE", "#lab")
	if got := strings.Join(m.Params[1:], " "); got != "+oooo b1 b2 b3 b4" {
		t.Errorf("MODE applied %q, want four", got)
	}
}

// Voice (+v, shown +): an operator gives it, NAMES, WHO and WHOIS show
// it, it is no operator's privilege (TOPIC under +t still gets 482), and
// PREFIX says (ov)@+ (irctest testPrefix, testTopicPrivileges).
func TestVoice(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	b.send("MODE #lab +v bob")
	b.expect("482", "bob #lab")
	a.send("MODE #lab +tv bob")
	b.expect("MODE", "#lab +tv bob")
	b.send("NAMES #lab")
	b.expect("353", "bob = #lab @alice +bob")
	b.send("WHO #lab")
	b.expect("352", "bob #lab bob 127.0.0.1 sockshift bob H+")
	a.send("WHOIS bob")
	a.expect("319", "alice bob +#lab")
	b.send("TOPIC #lab :voiced")
	b.expect("482", "bob #lab")
	a.send("MODE #lab -v bob")
	b.expect("MODE", "#lab -v bob")
	c := l.dial("carol")
	c.send("NICK carol")
	c.send("USER carol 0 * :c")
	if m := c.expect("005", "carol AWAYLEN="); !strings.Contains(strings.Join(m.Params, " "), "PREFIX=(ov)@+") {
		t.Errorf("005: %q", m.Params)
	}
}

// NAMES without a channel lists every channel, then one 366 (RFC 2812
// 3.2.5; irctest testNamesNoArgumentPublic2812).
func TestNamesOfEveryChannel(t *testing.T) {
	l := serve(t, nil)
	l.user("alice", "#one")
	l.user("bob", "#two")
	c := l.user("carol")
	c.send("NAMES")
	got := c.sync()
	if cmds := strings.Join(commands(got), " "); cmds != "353 353 366" {
		t.Fatalf("NAMES: %s", cmds)
	}
	if p := strings.Join(got[0].Params, " "); p != "carol = #one @alice" {
		t.Errorf("first 353: %q", p)
	}
	if p := strings.Join(got[1].Params, " "); p != "carol = #two @bob" {
		t.Errorf("second 353: %q", p)
	}
	if got[2].Params[1] != "*" {
		t.Errorf("366: %q", got[2].Params)
	}
}

// An invisible user's channels show in WHOIS only to those who share
// them (irctest testInvisibleWhois).
func TestInvisibleWhois(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#xyz")
	b := l.user("bob")
	a.send("MODE alice +i")
	a.expect("MODE", "alice +i")
	b.send("WHOIS alice")
	for _, m := range b.sync() {
		if m.Command == "319" {
			t.Errorf("319 for an invisible user to an outsider: %q", m.Params)
		}
	}
	b.join("#xyz")
	b.send("WHOIS alice")
	b.expect("319", "bob alice @#xyz")
}

// +m (moderated): only operators and voiced members speak; the others
// get 404, and a NOTICE nothing (RFC 2811 4.2.3).
func TestModerated(t *testing.T) {
	l := serve(t, nil)
	a := l.user("alice", "#lab")
	b := l.user("bob", "#lab")
	c := l.user("carol", "#lab")
	a.send("MODE #lab +mv bob")
	c.expect("MODE", "#lab +mv bob")
	c.send("PRIVMSG #lab :may I?")
	c.expect("404", "carol #lab")
	b.send("PRIVMSG #lab :voiced")
	c.expect("PRIVMSG", "#lab voiced")
	a.send("PRIVMSG #lab :operator")
	c.expect("PRIVMSG", "#lab operator")
	a.send("MODE #lab")
	a.expect("324", "alice #lab +mn")
	a.send("MODE #lab -m")
	c.expect("MODE", "#lab -m")
	c.send("PRIVMSG #lab :now I may")
	b.expect("PRIVMSG", "#lab now I may")
}
