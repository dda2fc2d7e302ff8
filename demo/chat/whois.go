package chat

import (
	"slices"
	"strings"
)

// cmdWhois answers WHOIS nick: who the user is (311), the channels it is
// on (319), its server (312), then 318. Clients ask on their own (irssi
// and weechat on a private message), and irctest reads the user name
// from it.
func (s *Server) cmdWhois(c *conn, m Message) bool {
	if len(m.Params) == 0 || m.Params[0] == "" {
		s.reply(c, "431", "No nickname given")
		return false
	}
	// "WHOIS server nick" names the server first; there is only this one.
	nicks := m.Params[len(m.Params)-1]
	ok := true
	for _, nick := range strings.Split(nicks, ",")[:min(maxTargets, strings.Count(nicks, ",")+1)] {
		u := s.nicks[fold(nick)]
		if u == nil {
			s.reply(c, "401", nick, "No such nick/channel")
			ok = false
			continue
		}
		s.reply(c, "311", u.nick, u.user, u.host, "*", u.real)
		var chans []string
		for ch := range u.chans {
			// An invisible user's channels only to those who share them,
			// and secret or private ones only to their members.
			if (!u.invisible || u == c || ch.has(c)) && !ch.hiddenFrom(c) {
				chans = append(chans, ch.nickPrefix(u)+ch.name)
			}
		}
		if len(chans) > 0 {
			slices.SortFunc(chans, func(a, b string) int { return strings.Compare(strings.TrimLeft(a, "@+"), strings.TrimLeft(b, "@+")) })
			s.reply(c, "319", u.nick, strings.Join(chans, " "))
		}
		s.reply(c, "312", u.nick, s.Config.ServerName, "sockshift chat")
		if u.oper {
			s.reply(c, "313", u.nick, "is an IRC operator")
		}
		if u.away != "" {
			s.reply(c, "301", u.nick, u.away)
		}
	}
	s.reply(c, "318", nicks, "End of /WHOIS list")
	return ok
}

// globMatch reports whether s matches pattern, where '*' stands for any
// run of bytes and '?' for one byte (IRC masks; '[' is a nick character,
// not a class).
func globMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
