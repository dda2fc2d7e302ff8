package chat

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// version is the server's software name in the welcome.
const version = "sockshift-chat-1"

// maxTargets bounds the comma-separated targets of one PRIVMSG or JOIN.
const maxTargets = 4

// maxWhoReplies bounds one WHO without a channel.
const maxWhoReplies = 100

// reply sends a numeric to c: server prefix, c's nick (or "*") first.
func (s *Server) reply(c *conn, numeric string, params ...string) {
	target := "*"
	if c.registered {
		target = c.nick
	}
	s.send(c, Message{Prefix: s.Config.ServerName, Command: numeric, Params: append([]string{target}, params...)})
}

// junk counts an erroneous line; too many and the client goes.
func (s *Server) junk(c *conn) {
	c.junk++
	if c.junk > s.Config.MaxJunk {
		s.drop(c, "Excess Flood")
	}
}

// handleLine handles one line from c. s.mu is held.
func (s *Server) handleLine(c *conn, raw []byte) {
	c.lastActive = time.Now()
	c.pingSent = time.Time{} // any line proves the client is there
	m, err := ParseLine(string(raw))
	switch {
	case errors.Is(err, ErrEmptyLine):
		return
	case err != nil:
		s.send(c, Message{Prefix: s.Config.ServerName, Command: "NOTICE", Params: []string{c.nickOrStar(), "Malformed line ignored"}})
		s.junk(c)
		return
	}
	ok := s.handle(c, m)
	if !ok {
		s.junk(c)
	} else if c.junk > 0 {
		c.junk--
	}
}

func (c *conn) nickOrStar() string {
	if c.registered {
		return c.nick
	}
	return "*"
}

// handle runs one command; it reports false for a line that was an error.
func (s *Server) handle(c *conn, m Message) bool {
	switch m.Command {
	case "NICK":
		return s.cmdNick(c, m)
	case "USER":
		return s.cmdUser(c, m)
	case "PING":
		if len(m.Params) == 0 {
			s.reply(c, "409", "No origin specified")
			return false
		}
		s.send(c, Message{Prefix: s.Config.ServerName, Command: "PONG", Params: []string{s.Config.ServerName, m.Params[0]}})
		return true
	case "PONG":
		return true // handleLine already counted it as an answer
	case "PASS":
		// Checked at registration (so PASS must come before NICK and
		// USER complete it). Without a server password, clients that
		// always send one (irssi with -w, bouncers) register as usual.
		if c.registered {
			s.reply(c, "462", "You may not reregister")
			return false
		}
		if s.needMore(c, m, 1) {
			return false
		}
		c.passOK = s.Config.Password != "" && secretEqual(m.Params[0], s.Config.Password)
		return true
	case "CAP":
		return s.cmdCap(c, m)
	case "QUIT":
		reason := "Client Quit"
		if len(m.Params) > 0 && m.Params[0] != "" {
			reason = "Quit: " + m.Params[0]
		}
		s.drop(c, reason)
		return true
	}
	if !c.registered {
		s.reply(c, "451", "You have not registered")
		return false
	}
	switch m.Command {
	case "JOIN":
		return s.cmdJoin(c, m)
	case "PART":
		return s.cmdPart(c, m)
	case "PRIVMSG", "NOTICE":
		return s.cmdMessage(c, m)
	case "NAMES":
		return s.cmdNames(c, m)
	case "TOPIC":
		return s.cmdTopic(c, m)
	case "WHO":
		return s.cmdWho(c, m)
	case "LIST":
		return s.cmdList(c, m)
	case "MODE":
		return s.cmdMode(c, m)
	case "WHOIS":
		return s.cmdWhois(c, m)
	case "KICK":
		return s.cmdKick(c, m)
	case "INVITE":
		return s.cmdInvite(c, m)
	case "AWAY":
		return s.cmdAway(c, m)
	case "ISON":
		return s.cmdIson(c, m)
	case "USERHOST":
		return s.cmdUserhost(c, m)
	case "OPER":
		return s.cmdOper(c, m)
	case "INFO":
		return s.cmdInfo(c, m)
	}
	if s.other(c, m) {
		return true
	}
	s.reply(c, "421", m.Command, "Unknown command")
	return false
}

func (s *Server) needMore(c *conn, m Message, n int) bool {
	if len(m.Params) >= n {
		return false
	}
	s.reply(c, "461", m.Command, "Not enough parameters")
	return true
}

func (s *Server) cmdNick(c *conn, m Message) bool {
	if len(m.Params) == 0 || m.Params[0] == "" {
		s.reply(c, "431", "No nickname given")
		return false
	}
	nick := m.Params[0]
	if !ValidNick(nick) {
		s.reply(c, "432", nick, "Erroneous nickname")
		return false
	}
	if other, ok := s.nicks[fold(nick)]; ok && other != c && !s.releaseGhost(other) {
		s.reply(c, "433", nick, "Nickname is already in use")
		return false
	}
	if !c.registered {
		c.nick = nick
		s.register(c)
		return true
	}
	if nick == c.nick {
		return true
	}
	msg := Message{Prefix: c.prefix(), Command: "NICK", Params: []string{nick}}
	s.send(c, msg)
	for _, p := range s.peers(c) {
		s.send(p, msg)
	}
	delete(s.nicks, fold(c.nick))
	c.nick = nick
	s.nicks[fold(nick)] = c
	return true
}

func (s *Server) cmdUser(c *conn, m Message) bool {
	if c.registered {
		s.reply(c, "462", "You may not reregister")
		return false
	}
	if s.needMore(c, m, 4) {
		return false
	}
	// A long user name is cut, as other servers do (irctest
	// testNonutf8Username), at a character boundary.
	user := cutRunes(m.Params[0], maxUserLen)
	if !validWord(user) || strings.ContainsRune(user, '@') {
		s.reply(c, "461", m.Command, "Bad user name")
		return false
	}
	if m.Params[3] == "" {
		s.reply(c, "461", m.Command, "Empty real name")
		return false
	}
	c.user = user
	c.real = cutRunes(m.Params[3], maxRealLen)
	s.register(c)
	return true
}

// releaseGhost drops the holder of a wanted nick if its client already
// closed the connection and its reader has not noticed yet, and reports
// whether it did: a client that reconnects at once gets its nick back
// instead of 433.
func (s *Server) releaseGhost(holder *conn) bool {
	if holder.pause != nil || !holder.peerGone() {
		return false
	}
	s.drop(holder, "Connection closed")
	return true
}

// register completes registration once both NICK and USER came.
func (s *Server) register(c *conn) {
	if c.nick == "" || c.user == "" || c.capHeld || c.registered {
		return
	}
	if s.Config.Password != "" && !c.passOK {
		// Modern IRC: 464, then ERROR and the connection closes.
		s.reply(c, "464", "Password incorrect")
		s.drop(c, "Bad password")
		return
	}
	if other, ok := s.nicks[fold(c.nick)]; ok && other != c && !s.releaseGhost(other) {
		s.reply(c, "433", c.nick, "Nickname is already in use")
		c.nick = ""
		return
	}
	c.registered = true
	s.nicks[fold(c.nick)] = c
	name := s.Config.ServerName
	s.reply(c, "001", "Welcome to the sockshift chat "+c.prefix())
	s.reply(c, "002", "Your host is "+name+", running version "+version)
	s.reply(c, "003", "This server was created "+s.made.UTC().Format(time.RFC1123))
	s.reply(c, "004", name, version, "io", "iklmnopstv", "klov")
	s.isupport(c)
	s.lusers(c)
	s.motd(c)
}

func (s *Server) cmdJoin(c *conn, m Message) bool {
	if s.needMore(c, m, 1) {
		return false
	}
	if m.Params[0] == "0" {
		for ch := range c.chans {
			s.part(c, ch, "Left all channels")
		}
		return true
	}
	names := strings.Split(m.Params[0], ",")
	if len(names) > maxTargets {
		s.reply(c, "407", m.Params[0], "Too many targets")
		return false
	}
	var keys []string
	if len(m.Params) > 1 {
		keys = strings.Split(m.Params[1], ",")
	}
	ok := true
	for i, name := range names {
		if !ValidChannel(name) {
			s.reply(c, "403", name, "No such channel")
			ok = false
			continue
		}
		ch := s.chans[fold(name)]
		if ch != nil {
			if _, in := ch.members[c]; in {
				continue
			}
		}
		if len(c.chans) >= s.Config.MaxChannelsPerClient {
			s.reply(c, "405", name, "You have joined too many channels")
			ok = false
			continue
		}
		if ch == nil {
			if len(s.chans) >= s.Config.MaxChannels {
				s.reply(c, "405", name, "The server has too many channels")
				ok = false
				continue
			}
			ch = newChannel(name)
			ch.ops[c] = struct{}{} // the first joiner runs it
			s.chans[fold(name)] = ch
		}
		if len(ch.members) >= s.Config.MaxMembers || (ch.limit > 0 && len(ch.members) >= ch.limit) {
			s.reply(c, "471", ch.name, "Cannot join channel (+l)")
			ok = false
			continue
		}
		if ch.modes&modeI != 0 && !ch.invited(c.nick, false) {
			s.reply(c, "473", ch.name, "Cannot join channel (+i)")
			ok = false
			continue
		}
		if ch.key != "" && (i >= len(keys) || keys[i] != ch.key) {
			s.reply(c, "475", ch.name, "Cannot join channel (+k)")
			ok = false
			continue
		}
		ch.invited(c.nick, true)
		ch.members[c] = struct{}{}
		c.chans[ch] = struct{}{}
		join := Message{Prefix: c.prefix(), Command: "JOIN", Params: []string{ch.name}}
		for mem := range ch.members {
			s.send(mem, join)
		}
		if ch.topic != "" {
			s.topicReplies(c, ch)
		}
		s.names(c, ch)
		for _, h := range ch.history {
			who := "<" + h.From + ">"
			if h.Notice {
				who = "-" + h.From + "-"
			}
			s.send(c, Message{Prefix: s.Config.ServerName, Command: "NOTICE",
				Params: []string{c.nick, "[" + ch.name + " history] " + who + " " + h.Text}})
		}
	}
	return ok
}

func (s *Server) cmdPart(c *conn, m Message) bool {
	if s.needMore(c, m, 1) {
		return false
	}
	reason := c.nick
	if len(m.Params) > 1 {
		reason = m.Params[1]
	}
	ok := true
	names := strings.Split(m.Params[0], ",")
	if len(names) > maxTargets {
		names = names[:maxTargets]
	}
	for _, name := range names {
		ch := s.chans[fold(name)]
		if ch == nil {
			s.reply(c, "403", name, "No such channel")
			ok = false
			continue
		}
		if _, in := ch.members[c]; !in {
			s.reply(c, "442", ch.name, "You're not on that channel")
			ok = false
			continue
		}
		s.part(c, ch, reason)
	}
	return ok
}

func (s *Server) part(c *conn, ch *channel, reason string) {
	msg := Message{Prefix: c.prefix(), Command: "PART", Params: []string{ch.name, reason}}
	for mem := range ch.members {
		s.send(mem, msg)
	}
	ch.remove(c)
	if len(ch.members) == 0 {
		delete(s.chans, fold(ch.name))
	}
}

func (s *Server) cmdMessage(c *conn, m Message) bool {
	notice := m.Command == "NOTICE"
	// NOTICE never gets an error back (RFC 2812 section 3.3.2).
	fail := func(numeric string, params ...string) bool {
		if !notice {
			s.reply(c, numeric, params...)
		}
		return false
	}
	if len(m.Params) == 0 || m.Params[0] == "" {
		return fail("411", "No recipient given ("+m.Command+")")
	}
	if len(m.Params) < 2 || m.Params[1] == "" {
		return fail("412", "No text to send")
	}
	text := m.Params[1]
	targets := strings.Split(m.Params[0], ",")
	if len(targets) > maxTargets {
		return fail("407", m.Params[0], "Too many targets")
	}
	ok := true
	for _, t := range targets {
		msg := Message{Prefix: c.prefix(), Command: m.Command, Params: []string{t, text}}
		if t != "" && (t[0] == '#' || t[0] == '&') {
			ch := s.chans[fold(t)]
			if ch == nil {
				ok = fail("403", t, "No such channel")
				continue
			}
			if !ch.has(c) && ch.modes&modeN != 0 || ch.modes&modeM != 0 && ch.nickPrefix(c) == "" {
				ok = fail("404", ch.name, "Cannot send to channel")
				continue
			}
			msg.Params[0] = ch.name
			for mem := range ch.members {
				if mem != c {
					s.send(mem, msg)
				}
			}
			ch.history = append(ch.history, historyLine{From: c.nick, Text: text, Notice: notice})
			if over := len(ch.history) - s.Config.History; over > 0 {
				ch.history = slices.Delete(ch.history, 0, over)
			}
			continue
		}
		to := s.nicks[fold(t)]
		if to == nil {
			ok = fail("401", t, "No such nick/channel")
			continue
		}
		msg.Params[0] = to.nick
		s.send(to, msg)
		if to.away != "" && !notice {
			s.reply(c, "301", to.nick, to.away)
		}
	}
	return ok
}

func (s *Server) topicReplies(c *conn, ch *channel) {
	if ch.topic == "" {
		s.reply(c, "331", ch.name, "No topic is set")
		return
	}
	s.reply(c, "332", ch.name, ch.topic)
	s.reply(c, "333", ch.name, ch.topicBy, strconv.FormatInt(ch.topicAt, 10))
}

func (s *Server) cmdTopic(c *conn, m Message) bool {
	if s.needMore(c, m, 1) {
		return false
	}
	ch := s.chans[fold(m.Params[0])]
	if ch == nil {
		s.reply(c, "403", m.Params[0], "No such channel")
		return false
	}
	if len(m.Params) == 1 {
		s.topicReplies(c, ch)
		return true
	}
	if !ch.has(c) {
		s.reply(c, "442", ch.name, "You're not on that channel")
		return false
	}
	if ch.modes&modeT != 0 && !ch.isOp(c) {
		s.reply(c, "482", ch.name, "You're not channel operator")
		return false
	}
	topic := m.Params[1]
	if len(topic) > MaxTopicLen {
		topic = topic[:MaxTopicLen]
	}
	ch.topic, ch.topicBy, ch.topicAt = topic, c.nick, time.Now().Unix()
	msg := Message{Prefix: c.prefix(), Command: "TOPIC", Params: []string{ch.name, topic}}
	for mem := range ch.members {
		s.send(mem, msg)
	}
	return true
}

// names sends 353 lines that fit MaxLine, then 366.
func (s *Server) names(c *conn, ch *channel) {
	s.namesLines(c, ch)
	s.reply(c, "366", ch.name, "End of /NAMES list")
}

// namesLines sends ch's 353 lines, each within MaxLine.
func (s *Server) namesLines(c *conn, ch *channel) {
	members := make([]*conn, 0, len(ch.members))
	for mem := range ch.members {
		members = append(members, mem)
	}
	slices.SortFunc(members, func(a, b *conn) int { return strings.Compare(a.nick, b.nick) })
	nicks := make([]string, len(members))
	for i, mem := range members {
		nicks[i] = ch.nickPrefix(mem) + mem.nick
	}
	room := MaxLine - 2 - len(":"+s.Config.ServerName+" 353 "+c.nick+" = "+ch.name+" :")
	symbol := ch.symbol()
	var line []string
	size := 0
	flush := func() {
		if len(line) > 0 {
			s.reply(c, "353", symbol, ch.name, strings.Join(line, " "))
		}
		line, size = nil, 0
	}
	for _, n := range nicks {
		if size+len(n)+1 > room {
			flush()
		}
		line = append(line, n)
		size += len(n) + 1
	}
	flush()
}

func (s *Server) cmdNames(c *conn, m Message) bool {
	if len(m.Params) == 0 {
		// Every channel c may see, then one 366 (RFC 2812 3.2.5).
		names := make([]string, 0, len(s.chans))
		for key, ch := range s.chans {
			if !ch.hiddenFrom(c) {
				names = append(names, key)
			}
		}
		slices.Sort(names)
		for _, key := range names {
			s.namesLines(c, s.chans[key])
		}
		s.reply(c, "366", "*", "End of /NAMES list")
		return true
	}
	// NAMES #a,#b: the 353s of each, then one 366 that names them all, as
	// given (modern.ircdocs.horse; irctest testNamesMultipleChannels2812).
	for _, name := range strings.Split(m.Params[0], ",")[:min(maxTargets, strings.Count(m.Params[0], ",")+1)] {
		if ch := s.chans[fold(name)]; ch != nil && !ch.hiddenFrom(c) {
			s.namesLines(c, ch)
		}
	}
	s.reply(c, "366", m.Params[0], "End of /NAMES list")
	return true
}

// who sends one 352 about u, or with x one WHOX 354; ch, if not nil, is
// the channel asked about.
func (s *Server) who(c *conn, ch *channel, u *conn, x *whox) {
	where, flags := "*", "H"
	if u.away != "" {
		flags = "G"
	}
	if u.oper {
		flags += "*"
	}
	if ch != nil {
		where = ch.name
		flags += ch.nickPrefix(u)
	}
	if x == nil {
		s.reply(c, "352", where, u.user, u.host, s.Config.ServerName, u.nick, flags, "0 "+u.real)
		return
	}
	var params []string
	for _, f := range whoxFields {
		if !strings.ContainsRune(x.fields, rune(f)) {
			continue
		}
		switch f {
		case 't':
			params = append(params, x.token)
		case 'c':
			params = append(params, where)
		case 'u':
			params = append(params, u.user)
		case 'i':
			params = append(params, u.host) // the host is the client's address
		case 'h':
			params = append(params, u.host)
		case 's':
			params = append(params, s.Config.ServerName)
		case 'n':
			params = append(params, u.nick)
		case 'f':
			params = append(params, flags)
		case 'd':
			params = append(params, "0") // hops: there is one server
		case 'l':
			// Since its last line here: a moved client's count restarts.
			params = append(params, strconv.Itoa(int(time.Since(u.lastActive).Seconds())))
		case 'a':
			params = append(params, "0") // no accounts
		case 'o':
			params = append(params, "n/a") // no channel op levels
		case 'r':
			params = append(params, u.real)
		}
	}
	s.reply(c, "354", params...)
}

// whoxFields are WHOX's field letters in the order replies carry them,
// whatever the order asked (IRCv3 WHOX).
const whoxFields = "tcuihsnfdlaor"

// whox is what a WHOX query ("WHO mask %fields[,token]") asks for.
type whox struct {
	fields string
	token  string // 1 to 3 digits
}

// parseWhox reads WHO's second parameter: a WHOX query, or nil (plain
// WHO, or its "o" flag: operators only).
func parseWhox(arg string) *whox {
	if !strings.HasPrefix(arg, "%") {
		return nil
	}
	fields, token, _ := strings.Cut(arg[1:], ",")
	if len(token) == 0 || len(token) > 3 || strings.Trim(token, "0123456789") != "" {
		token = "0"
	}
	return &whox{fields: fields, token: token}
}

// visible reports whether c may see u in a WHO that names no channel:
// an invisible user only to itself and those who share a channel.
func (s *Server) visible(c, u *conn) bool {
	if !u.invisible || u == c {
		return true
	}
	for ch := range u.chans {
		if ch.has(c) {
			return true
		}
	}
	return false
}

func (s *Server) cmdWho(c *conn, m Message) bool {
	mask := "*"
	if len(m.Params) > 0 && m.Params[0] != "" && m.Params[0] != "0" {
		mask = m.Params[0]
	}
	var x *whox
	opersOnly := false
	if len(m.Params) > 1 {
		x = parseWhox(m.Params[1])
		opersOnly = m.Params[1] == "o"
	}
	shown := func(u *conn) bool { return !opersOnly || u.oper }
	switch {
	case mask == "*":
		n := 0
		for _, u := range s.nicks {
			if n == maxWhoReplies {
				break
			}
			if s.visible(c, u) && shown(u) {
				s.who(c, nil, u, x)
				n++
			}
		}
	case mask[0] == '#' || mask[0] == '&':
		if ch := s.chans[fold(mask)]; ch != nil && !ch.hiddenFrom(c) {
			members := make([]*conn, 0, len(ch.members))
			for mem := range ch.members {
				members = append(members, mem)
			}
			slices.SortFunc(members, func(a, b *conn) int { return strings.Compare(a.nick, b.nick) })
			for _, mem := range members {
				if shown(mem) {
					s.who(c, ch, mem, x)
				}
			}
		}
	case strings.ContainsAny(mask, "*?"):
		var found []*conn
		for _, u := range s.nicks {
			if globMatch(fold(mask), fold(u.nick)) && len(found) < maxWhoReplies && s.visible(c, u) && shown(u) {
				found = append(found, u)
			}
		}
		slices.SortFunc(found, func(a, b *conn) int { return strings.Compare(a.nick, b.nick) })
		for _, u := range found {
			s.who(c, nil, u, x)
		}
	default:
		if u := s.nicks[fold(mask)]; u != nil && shown(u) {
			s.who(c, nil, u, x)
		}
	}
	s.reply(c, "315", mask, "End of WHO list")
	return true
}

func (s *Server) cmdList(c *conn, m Message) bool {
	names := make([]string, 0, len(s.chans))
	if len(m.Params) > 0 && m.Params[0] != "" {
		// LIST #a,#b: only those that exist (irctest testListNonexistent).
		for _, n := range strings.Split(m.Params[0], ",")[:min(maxTargets, strings.Count(m.Params[0], ",")+1)] {
			if ch := s.chans[fold(n)]; ch != nil && !ch.hiddenFrom(c) && !slices.Contains(names, ch.name) {
				names = append(names, ch.name)
			}
		}
	} else {
		for _, ch := range s.chans {
			if !ch.hiddenFrom(c) {
				names = append(names, ch.name)
			}
		}
	}
	slices.Sort(names)
	for _, n := range names {
		ch := s.chans[fold(n)]
		s.reply(c, "322", ch.name, strconv.Itoa(len(ch.members)), ch.topic)
	}
	s.reply(c, "323", "End of LIST")
	return true
}

// cutRunes cuts s to at most n bytes without splitting a UTF-8 sequence.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
