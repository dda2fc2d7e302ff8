package chat

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLine is the longest line, with its CR LF, that either side may send
// (RFC 2812 section 2.3).
const MaxLine = 512

// maxParams bounds a message's parameters (RFC 2812: 15).
const maxParams = 15

// Message is one IRC line: an optional prefix (the sender), a command (a
// word or a three-digit numeric) and parameters, of which only the last
// may hold spaces or be empty.
type Message struct {
	Prefix  string
	Command string
	Params  []string
}

// Errors of ParseLine.
var (
	ErrEmptyLine   = errors.New("chat: empty line")
	ErrBadLine     = errors.New("chat: malformed line")
	ErrLineTooLong = errors.New("chat: line too long")
)

// ParseLine parses one line without its line ending. Commands are returned
// in upper case. It never panics; a line with NUL, CR or LF inside, no
// command, a bad command or more than 15 parameters is an error.
func ParseLine(line string) (Message, error) {
	var m Message
	if len(line)+2 > MaxLine {
		return m, fmt.Errorf("%w: %d bytes", ErrLineTooLong, len(line))
	}
	if strings.ContainsAny(line, "\x00\r\n") {
		return m, fmt.Errorf("%w: NUL, CR or LF inside", ErrBadLine)
	}
	rest := strings.TrimLeft(line, " ")
	if rest == "" {
		return m, ErrEmptyLine
	}
	if rest[0] == ':' {
		var prefix string
		prefix, rest, _ = strings.Cut(rest[1:], " ")
		if prefix == "" {
			return m, fmt.Errorf("%w: empty prefix", ErrBadLine)
		}
		m.Prefix = prefix
		rest = strings.TrimLeft(rest, " ")
	}
	var cmd string
	cmd, rest, _ = strings.Cut(rest, " ")
	if !validCommand(cmd) {
		return Message{}, fmt.Errorf("%w: command %q", ErrBadLine, cmd)
	}
	m.Command = strings.ToUpper(cmd)
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		if len(m.Params) == maxParams {
			return Message{}, fmt.Errorf("%w: more than %d parameters", ErrBadLine, maxParams)
		}
		if rest[0] == ':' {
			m.Params = append(m.Params, rest[1:])
			break
		}
		var p string
		p, rest, _ = strings.Cut(rest, " ")
		if len(m.Params) == maxParams-1 {
			// RFC 2812: the 15th parameter takes the rest of the line.
			if rest != "" {
				p += " " + rest
			}
			m.Params = append(m.Params, p)
			break
		}
		m.Params = append(m.Params, p)
	}
	return m, nil
}

// validCommand: letters, or exactly three digits.
func validCommand(c string) bool {
	if c == "" || len(c) > 32 {
		return false
	}
	if len(c) == 3 && isDigit(c[0]) && isDigit(c[1]) && isDigit(c[2]) {
		return true
	}
	for i := 0; i < len(c); i++ {
		if !isLetter(c[i]) {
			return false
		}
	}
	return true
}

func isDigit(b byte) bool  { return '0' <= b && b <= '9' }
func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

// String formats m as a line without its line ending. It alone decides
// the colon: the last parameter goes out as a trailing parameter (':')
// when it is free text (see lastIsWord) or when it needs one (empty,
// spaces, a leading ':'). Clients take message text, topics and reasons
// from the trailing parameter, and ii shows nothing when a one-word text
// comes without it.
func (m Message) String() string {
	var b strings.Builder
	if m.Prefix != "" {
		b.WriteByte(':')
		b.WriteString(m.Prefix)
		b.WriteByte(' ')
	}
	b.WriteString(m.Command)
	for i, p := range m.Params {
		b.WriteByte(' ')
		if i == len(m.Params)-1 && (!lastIsWord(m.Command) || !validWord(p)) {
			b.WriteByte(':')
		}
		b.WriteString(p)
	}
	return b.String()
}

// lastIsWord reports whether a command's last parameter is a name or a
// mode rather than free text. Everything else (PRIVMSG, NOTICE, TOPIC,
// PART, QUIT, KICK, ERROR, PING, PONG and the numerics' closing text) is
// text, so a command added later goes out right without a thought.
func lastIsWord(cmd string) bool {
	switch cmd {
	case "JOIN", "NICK", "MODE",
		"004", // server version umodes chanmodes
		"221", // the user's modes
		"324", // a channel's modes
		"333": // who set the topic, and when
		return true
	}
	return false
}

// Limits of names.
const (
	MaxNickLen    = 30
	MaxChannelLen = 50
	MaxTopicLen   = 300
	maxUserLen    = 30
	maxRealLen    = 100
)

// ValidNick reports whether s is a nickname: a letter or one of []\`_^{|}
// first, then letters, digits, those and '-', at most MaxNickLen bytes.
func ValidNick(s string) bool {
	if s == "" || len(s) > MaxNickLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isLetter(c), strings.IndexByte("[]\\`_^{|}", c) >= 0:
		case i > 0 && (isDigit(c) || c == '-'):
		default:
			return false
		}
	}
	return true
}

// ValidChannel reports whether s is a channel name: '#' or '&', then at
// most MaxChannelLen-1 bytes without space, comma, BEL, NUL, CR or LF.
func ValidChannel(s string) bool {
	if len(s) < 2 || len(s) > MaxChannelLen || (s[0] != '#' && s[0] != '&') {
		return false
	}
	return !strings.ContainsAny(s, " ,\x07\x00\r\n:")
}

// fold is the case mapping of nicks and channel names (ASCII).
func fold(s string) string { return strings.ToLower(s) }

// validText reports whether s may be carried in a line: no NUL, CR or LF.
func validText(s string) bool { return !strings.ContainsAny(s, "\x00\r\n") }

// validWord reports whether s may be a middle parameter.
func validWord(s string) bool {
	return s != "" && s[0] != ':' && validText(s) && !strings.ContainsRune(s, ' ')
}
