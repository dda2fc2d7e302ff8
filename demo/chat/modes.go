package chat

import (
	"crypto/subtle"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Channel modes without a parameter, as bits (they move in snapshots as
// such).
const (
	modeT uint8 = 1 << iota // +t: only operators set the topic
	modeN                   // +n: no messages from outside the channel
	modeI                   // +i: invited users only
	modeM                   // +m: only operators and voiced members speak
	modeS                   // +s: secret, hidden from those outside it
	modeP                   // +p: private, hidden from those outside it as well

	knownModes = modeT | modeN | modeI | modeM | modeS | modeP
)

// modeBits maps the parameterless modes to their bits, in 324's order.
var modeBits = []struct {
	char byte
	bit  uint8
}{{'i', modeI}, {'m', modeM}, {'n', modeN}, {'p', modeP}, {'s', modeS}, {'t', modeT}}

// Bounds of the state the modes add.
const (
	maxKeyLen  = 23  // +k
	maxAwayLen = 200 // AWAY text
	maxInvites = 50  // pending invites per channel; the oldest goes first
	maxKickLen = 300 // KICK reason
	maxModes   = 4   // mode changes with a parameter in one MODE line
)

// newChannel is a channel as its first joiner makes it: +n, as other
// servers default.
func newChannel(name string) *channel {
	return &channel{name: name, members: map[*conn]struct{}{}, ops: map[*conn]struct{}{},
		voices: map[*conn]struct{}{}, modes: modeN, created: time.Now().Unix()}
}

// validKey reports whether s may be a channel key: a word without commas.
func validKey(s string) bool {
	return len(s) <= maxKeyLen && validWord(s) && !strings.ContainsRune(s, ',')
}

// hiddenFrom reports whether ch (+s or +p) is hidden from c, who is not
// in it: left out of LIST, NAMES and WHOIS, its members out of WHO.
func (ch *channel) hiddenFrom(c *conn) bool {
	return ch.modes&(modeS|modeP) != 0 && !ch.has(c)
}

// symbol is 353's channel type: "@" secret, "*" private, "=" public
// (RFC 2812 3.2.5).
func (ch *channel) symbol() string {
	switch {
	case ch.modes&modeS != 0:
		return "@"
	case ch.modes&modeP != 0:
		return "*"
	}
	return "="
}

func (ch *channel) isOp(c *conn) bool {
	_, ok := ch.ops[c]
	return ok
}

func (ch *channel) has(c *conn) bool {
	_, ok := ch.members[c]
	return ok
}

// remove takes c out of ch (and ch out of c).
func (ch *channel) remove(c *conn) {
	delete(ch.members, c)
	delete(ch.ops, c)
	delete(ch.voices, c)
	delete(c.chans, ch)
}

// invited reports whether nick has a pending invite to ch, and uses it up
// when take is set.
func (ch *channel) invited(nick string, take bool) bool {
	i := slices.IndexFunc(ch.invites, func(n string) bool { return fold(n) == fold(nick) })
	if i >= 0 && take {
		ch.invites = slices.Delete(ch.invites, i, i+1)
	}
	return i >= 0
}

func (ch *channel) invite(nick string) {
	if ch.invited(nick, false) {
		return
	}
	if len(ch.invites) >= maxInvites {
		ch.invites = slices.Delete(ch.invites, 0, 1)
	}
	ch.invites = append(ch.invites, nick)
}

// modeString is the channel's modes as 324 gives them; the key only to
// members.
func (ch *channel) modeString(member bool) []string {
	flags := "+"
	var params []string
	for _, f := range modeBits {
		if ch.modes&f.bit != 0 {
			flags += string(f.char)
		}
	}
	if ch.key != "" {
		flags += "k"
		if member {
			params = append(params, ch.key)
		} else {
			params = append(params, "*")
		}
	}
	if ch.limit > 0 {
		flags += "l"
		params = append(params, strconv.Itoa(ch.limit))
	}
	return append([]string{flags}, params...)
}

// nickPrefix is "@" for a channel operator, "+" for a voiced member.
func (ch *channel) nickPrefix(c *conn) string {
	if ch.isOp(c) {
		return "@"
	}
	if _, ok := ch.voices[c]; ok {
		return "+"
	}
	return ""
}

// cmdMode queries or changes a channel's modes, or the user's own.
func (s *Server) cmdMode(c *conn, m Message) bool {
	if s.needMore(c, m, 1) {
		return false
	}
	t := m.Params[0]
	if t[0] != '#' && t[0] != '&' {
		return s.userMode(c, m)
	}
	ch := s.chans[fold(t)]
	if ch == nil {
		s.reply(c, "403", t, "No such channel")
		return false
	}
	if len(m.Params) == 1 {
		s.reply(c, "324", append([]string{ch.name}, ch.modeString(ch.has(c))...)...)
		s.reply(c, "329", ch.name, strconv.FormatInt(ch.created, 10))
		return true
	}
	if strings.Trim(m.Params[1], "+-") == "b" && len(m.Params) == 2 {
		// The ban list clients ask for on their own: there are no bans.
		s.reply(c, "368", ch.name, "End of channel ban list")
		return true
	}
	if !ch.isOp(c) {
		s.reply(c, "482", ch.name, "You're not channel operator")
		return false
	}
	return s.changeModes(c, ch, m.Params[1], m.Params[2:])
}

// changeModes applies a mode string such as "+o-t bob" from an operator,
// tells the channel what changed, and reports false if any part was an
// error.
func (s *Server) changeModes(c *conn, ch *channel, modes string, args []string) bool {
	ok := true
	add := true
	var done strings.Builder // the applied changes, such as "+o-t"
	var doneArgs []string
	lastSign := byte(0)
	applied := func(char byte, arg ...string) {
		sign := byte('-')
		if add {
			sign = '+'
		}
		if sign != lastSign {
			done.WriteByte(sign)
			lastSign = sign
		}
		done.WriteByte(char)
		doneArgs = append(doneArgs, arg...)
	}
	withArg := 0
	// Past MODES changes with a parameter, the rest of the line is
	// ignored, as other servers do.
	full := func() bool { return withArg >= maxModes }
	next := func() (string, bool) {
		if len(args) == 0 {
			return "", false
		}
		a := args[0]
		args = args[1:]
		withArg++
		return a, true
	}
	for i := 0; i < len(modes); i++ {
		switch char := modes[i]; char {
		case '+', '-':
			add = char == '+'
		case 't', 'n', 'i', 'm', 's', 'p':
			bit := modeT
			for _, f := range modeBits {
				if f.char == char {
					bit = f.bit
				}
			}
			if (ch.modes&bit != 0) == add {
				continue
			}
			if add {
				ch.modes |= bit
			} else {
				ch.modes &^= bit
			}
			applied(char)
		case 'o', 'v':
			if full() {
				continue
			}
			nick, have := next()
			if !have {
				s.reply(c, "461", "MODE", "Not enough parameters")
				ok = false
				continue
			}
			u := s.nicks[fold(nick)]
			if u == nil {
				s.reply(c, "401", nick, "No such nick/channel")
				ok = false
				continue
			}
			if !ch.has(u) {
				s.reply(c, "441", u.nick, ch.name, "They aren't on that channel")
				ok = false
				continue
			}
			set := ch.ops
			if char == 'v' {
				set = ch.voices // voice: may speak under +m
			}
			if _, on := set[u]; on == add {
				continue
			}
			if add {
				set[u] = struct{}{}
			} else {
				delete(set, u)
			}
			applied(char, u.nick)
		case 'k':
			if full() {
				continue
			}
			if !add {
				next() // "-k key": the key given does not matter
				if ch.key != "" {
					ch.key = ""
					applied('k', "*")
				}
				continue
			}
			key, have := next()
			if !have {
				s.reply(c, "461", "MODE", "Not enough parameters")
				ok = false
				continue
			}
			if !validKey(key) {
				s.reply(c, "525", ch.name, "Key is not well-formed")
				ok = false
				continue
			}
			ch.key = key
			applied('k', key)
		case 'l':
			if !add {
				if ch.limit > 0 {
					ch.limit = 0
					applied('l')
				}
				continue
			}
			if full() {
				continue
			}
			arg, have := next()
			if !have {
				s.reply(c, "461", "MODE", "Not enough parameters")
				ok = false
				continue
			}
			n, err := strconv.Atoi(arg)
			if err != nil || n <= 0 {
				ok = false // other servers ignore a bad limit too
				continue
			}
			ch.limit = min(n, s.Config.MaxMembers)
			applied('l', strconv.Itoa(ch.limit))
		case 'b':
			// No bans: a ban list query alone was answered above.
			s.reply(c, "472", "b", "Bans are not supported")
			ok = false
		default:
			s.reply(c, "472", string(char), "is unknown mode char to me")
			ok = false
		}
	}
	if done.Len() > 0 {
		msg := Message{Prefix: c.prefix(), Command: "MODE", Params: append([]string{ch.name, done.String()}, doneArgs...)}
		for mem := range ch.members {
			s.send(mem, msg)
		}
	}
	return ok
}

// userMode answers MODE for the user's own nick: +i (invisible: hidden
// from WHO of those who share no channel) and -o (no longer a server
// operator) are the user modes one may change.
func (s *Server) userMode(c *conn, m Message) bool {
	if fold(m.Params[0]) != fold(c.nick) {
		if s.nicks[fold(m.Params[0])] == nil {
			s.reply(c, "401", m.Params[0], "No such nick/channel")
		} else {
			s.reply(c, "502", "Cannot change mode for other users")
		}
		return false
	}
	if len(m.Params) == 1 {
		s.reply(c, "221", c.userModes())
		return true
	}
	add, ok, changed := true, true, ""
	for _, char := range m.Params[1] {
		switch char {
		case '+', '-':
			add = char == '+'
		case 'i':
			if c.invisible != add {
				c.invisible = add
				changed += map[bool]string{true: "+i", false: "-i"}[add]
			}
		case 'o':
			// Only OPER makes an operator; anyone may stop being one
			// (RFC 2812 3.1.5: +o from MODE is ignored).
			if !add && c.oper {
				c.oper = false
				changed += "-o"
			}
		default:
			ok = false
		}
	}
	if !ok {
		s.reply(c, "501", "Unknown MODE flag")
	}
	if changed != "" {
		s.send(c, Message{Prefix: c.prefix(), Command: "MODE", Params: []string{c.nick, changed}})
	}
	return ok
}

func (c *conn) userModes() string {
	modes := "+"
	if c.invisible {
		modes += "i"
	}
	if c.oper {
		modes += "o"
	}
	return modes
}

// cmdKick removes members from a channel: KICK #c nick[,nick] [:reason].
func (s *Server) cmdKick(c *conn, m Message) bool {
	if s.needMore(c, m, 2) {
		return false
	}
	ch := s.chans[fold(m.Params[0])]
	switch {
	case ch == nil:
		s.reply(c, "403", m.Params[0], "No such channel")
		return false
	case !ch.has(c):
		s.reply(c, "442", ch.name, "You're not on that channel")
		return false
	case !ch.isOp(c):
		s.reply(c, "482", ch.name, "You're not channel operator")
		return false
	}
	reason := c.nick
	if len(m.Params) > 2 && m.Params[2] != "" {
		reason = cutRunes(m.Params[2], maxKickLen)
	}
	ok := true
	nicks := strings.Split(m.Params[1], ",")
	for _, nick := range nicks[:min(len(nicks), maxTargets)] {
		u := s.nicks[fold(nick)]
		if u == nil || !ch.has(u) {
			s.reply(c, "441", nick, ch.name, "They aren't on that channel")
			ok = false
			continue
		}
		msg := Message{Prefix: c.prefix(), Command: "KICK", Params: []string{ch.name, u.nick, reason}}
		for mem := range ch.members {
			s.send(mem, msg)
		}
		ch.remove(u)
		if len(ch.members) == 0 {
			delete(s.chans, fold(ch.name))
		}
	}
	return ok
}

// cmdInvite invites a user to a channel: INVITE nick #c. Past +i it takes
// an operator.
func (s *Server) cmdInvite(c *conn, m Message) bool {
	if s.needMore(c, m, 2) {
		return false
	}
	u := s.nicks[fold(m.Params[0])]
	if u == nil {
		s.reply(c, "401", m.Params[0], "No such nick/channel")
		return false
	}
	name := m.Params[1]
	ch := s.chans[fold(name)]
	if ch != nil {
		switch {
		case !ch.has(c):
			s.reply(c, "442", ch.name, "You're not on that channel")
			return false
		case ch.modes&modeI != 0 && !ch.isOp(c):
			s.reply(c, "482", ch.name, "You're not channel operator")
			return false
		case ch.has(u):
			s.reply(c, "443", u.nick, ch.name, "is already on channel")
			return false
		}
		name = ch.name
		ch.invite(u.nick)
	} else if !ValidChannel(name) {
		s.reply(c, "403", name, "No such channel")
		return false
	}
	s.reply(c, "341", u.nick, name)
	if u.away != "" {
		s.reply(c, "301", u.nick, u.away)
	}
	s.send(u, Message{Prefix: c.prefix(), Command: "INVITE", Params: []string{u.nick, name}})
	return true
}

// cmdAway sets (AWAY :text) or clears (AWAY) the away message.
func (s *Server) cmdAway(c *conn, m Message) bool {
	if len(m.Params) == 0 || m.Params[0] == "" {
		c.away = ""
		s.reply(c, "305", "You are no longer marked as being away")
		return true
	}
	c.away = cutRunes(m.Params[0], maxAwayLen)
	s.reply(c, "306", "You have been marked as being away")
	return true
}

// cmdCap answers IRCv3 capability negotiation: there are no capabilities.
// Registration waits for CAP END once a client started negotiating, as
// the specification asks.
func (s *Server) cmdCap(c *conn, m Message) bool {
	if s.needMore(c, m, 1) {
		return false
	}
	sub := strings.ToUpper(m.Params[0])
	switch sub {
	case "LS", "LIST":
		if !c.registered && sub == "LS" {
			c.capHeld = true
		}
		s.send(c, Message{Prefix: s.Config.ServerName, Command: "CAP", Params: []string{c.nickOrStar(), sub, ""}})
	case "REQ":
		if !c.registered {
			c.capHeld = true
		}
		want := ""
		if len(m.Params) > 1 {
			want = m.Params[1]
		}
		s.send(c, Message{Prefix: s.Config.ServerName, Command: "CAP", Params: []string{c.nickOrStar(), "NAK", want}})
	case "END":
		if c.capHeld {
			c.capHeld = false
			s.register(c)
		}
	default:
		s.reply(c, "410", m.Params[0], "Invalid CAP command")
		return false
	}
	return true
}

// lusers sends the server's user counts (251-255).
func (s *Server) lusers(c *conn) {
	invisible, opers := 0, 0
	for _, u := range s.nicks {
		if u.invisible {
			invisible++
		}
		if u.oper {
			opers++
		}
	}
	users := len(s.nicks)
	s.reply(c, "251", "There are "+strconv.Itoa(users-invisible)+" users and "+strconv.Itoa(invisible)+" invisible on 1 servers")
	s.reply(c, "252", strconv.Itoa(opers), "operator(s) online")
	if unknown := len(s.conns) - users; unknown > 0 {
		s.reply(c, "253", strconv.Itoa(unknown), "unknown connection(s)")
	}
	s.reply(c, "254", strconv.Itoa(len(s.chans)), "channels formed")
	s.reply(c, "255", "I have "+strconv.Itoa(users)+" clients and 0 servers")
	s.maxUsers = max(s.maxUsers, users)
	counts := strconv.Itoa(users) + ", max " + strconv.Itoa(s.maxUsers)
	s.reply(c, "265", "Current local users "+counts)
	s.reply(c, "266", "Current global users "+counts)
}

// cmdIson answers ISON nick...: those of them online.
func (s *Server) cmdIson(c *conn, m Message) bool {
	if s.needMore(c, m, 1) {
		return false
	}
	var on []string
	for _, p := range m.Params {
		for _, nick := range strings.Fields(p) {
			if u := s.nicks[fold(nick)]; u != nil && len(on) < maxWhoReplies {
				on = append(on, u.nick)
			}
		}
	}
	s.reply(c, "303", strings.Join(on, " "))
	return true
}

// cmdUserhost answers USERHOST nick... (at most five): nick=+user@host,
// '-' instead of '+' for one away.
func (s *Server) cmdUserhost(c *conn, m Message) bool {
	if s.needMore(c, m, 1) {
		return false
	}
	var out []string
	for _, nick := range m.Params[:min(5, len(m.Params))] {
		u := s.nicks[fold(nick)]
		if u == nil {
			continue
		}
		here := "+"
		if u.away != "" {
			here = "-"
		}
		out = append(out, u.nick+"="+here+u.user+"@"+u.host)
	}
	s.reply(c, "302", strings.Join(out, " "))
	return true
}

// motd answers MOTD: there is none.
func (s *Server) motd(c *conn) { s.reply(c, "422", "MOTD File is missing") }

// isupport sends the 005 lines.
func (s *Server) isupport(c *conn) {
	s.reply(c, "005", "AWAYLEN="+strconv.Itoa(maxAwayLen), "CASEMAPPING=ascii", "CHANLIMIT=#&:"+strconv.Itoa(s.Config.MaxChannelsPerClient),
		"CHANMODES=,k,l,imnpst", "CHANNELLEN="+strconv.Itoa(MaxChannelLen), "CHANTYPES=#&", "KEYLEN="+strconv.Itoa(maxKeyLen),
		"KICKLEN="+strconv.Itoa(maxKickLen), "MAXTARGETS="+strconv.Itoa(maxTargets), "MODES="+strconv.Itoa(maxModes),
		"NICKLEN="+strconv.Itoa(MaxNickLen), "PREFIX=(ov)@+", "are supported by this server")
	targets := strconv.Itoa(maxTargets)
	targmax := "TARGMAX="
	for i, cmd := range []string{"JOIN", "KICK", "LIST", "NAMES", "NOTICE", "PART", "PRIVMSG", "WHOIS"} {
		if i > 0 {
			targmax += ","
		}
		targmax += cmd + ":" + targets
	}
	s.reply(c, "005", targmax, "TOPICLEN="+strconv.Itoa(MaxTopicLen), "WHOX", "are supported by this server")
}

// other answers the commands that only report: VERSION, TIME, LUSERS,
// MOTD. It reports false for a command it does not know.
func (s *Server) other(c *conn, m Message) (known bool) {
	switch m.Command {
	case "VERSION":
		s.reply(c, "351", version+".", s.Config.ServerName, "sockshift chat: an IRC subset whose connections move between hosts")
		s.isupport(c)
	case "TIME":
		s.reply(c, "391", s.Config.ServerName, time.Now().UTC().Format(time.RFC1123))
	case "LUSERS":
		s.lusers(c)
	case "MOTD":
		s.motd(c)
	default:
		return false
	}
	return true
}

// cmdOper makes c a server operator (RFC 2812 3.1.4): OPER name password,
// checked against Config.Operators. 381 and MODE +o on success, 464 for
// a wrong name or password (which of the two is not told), 491 when the
// server has no operators at all.
func (s *Server) cmdOper(c *conn, m Message) bool {
	if s.needMore(c, m, 2) {
		return false
	}
	if len(s.Config.Operators) == 0 {
		s.reply(c, "491", "No O-lines for your host")
		return false
	}
	want, known := s.Config.Operators[m.Params[0]]
	if !known || !secretEqual(m.Params[1], want) {
		s.reply(c, "464", "Password incorrect")
		return false
	}
	if !c.oper {
		c.oper = true
		s.send(c, Message{Prefix: c.prefix(), Command: "MODE", Params: []string{c.nick, "+o"}})
	}
	s.reply(c, "381", "You are now an IRC operator")
	return true
}

// secretEqual compares a password given with the one configured in time
// that does not depend on where they differ.
func secretEqual(given, want string) bool {
	return subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
}

// info is what INFO tells (371 lines).
var info = []string{
	version + ": an IRC server (a practical subset of RFC 2812) whose live",
	"connections move between hosts with Linux TCP repair.",
	"Part of sockshift's demo.",
}

// cmdInfo answers INFO [target] (RFC 2812 3.4.10): 371 lines and 374.
// The target is this server's name (or a mask of it), or the nick of a
// user on it; anything else gets 402.
func (s *Server) cmdInfo(c *conn, m Message) bool {
	if len(m.Params) > 0 && m.Params[0] != "" && !s.isThisServer(m.Params[0]) {
		s.reply(c, "402", m.Params[0], "No such server")
		return false
	}
	for _, line := range info {
		s.reply(c, "371", line)
	}
	s.reply(c, "374", "End of INFO list")
	return true
}

// isThisServer reports whether target names this server: its name, a
// mask that matches it, or the nick of one of its users.
func (s *Server) isThisServer(target string) bool {
	return globMatch(fold(target), fold(s.Config.ServerName)) || s.nicks[fold(target)] != nil
}
