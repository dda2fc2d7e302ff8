package chat

import (
	"fmt"

	"github.com/sockshift/sockshift/handoff/wire"
)

// Snapshot formats. Each starts with its version; decoding is bounded by
// the limits below whatever the sender claims, and checks what it reads
// (valid, unique names; members that exist), so a target never builds
// state it could not have built from lines.
const (
	// 2: operators and voices, channel modes, keys, limits, invites, creation
	// times, away messages, invisible users; a too-long line's progress;
	// registration held by CAP.
	// 3: server operators (user mode +o), secret and private channels
	// (+s, +p), a server password given (PASS) before registration; the
	// peak user count (265, 266).
	sharedVersion = 3
	connVersion   = 3

	maxSnapUsers    = 100000
	maxSnapChannels = 100000
	maxSnapHistory  = 1000
	maxSnapText     = MaxLine
	maxSnapIn       = 16 << 10 // a partial line, or lines held back by the rate: < MaxLine + one read
	maxSnapOut      = 16 << 20 // pending output; far above any MaxSendQ
)

// sharedState is the snapshot of what all connections share.
type sharedState struct {
	Users    []userSnap
	Channels []chanSnap
	MaxUsers uint32 // the most registered users LUSERS has seen at once
}

type userSnap struct {
	Nick, User, Real, Host string
	Away                   string // empty: here
	Invisible              bool   // user mode +i
	Oper                   bool   // user mode +o: a server operator
}

type chanSnap struct {
	Name, Topic, TopicBy string
	TopicAt              int64
	Created              int64    // Unix seconds (329)
	Modes                uint8    // of knownModes
	Key                  string   // +k; empty: none
	Limit                uint32   // +l; 0: none
	Members              []string // nicks
	Ops                  []string // members who are channel operators
	Voices               []string // members with voice
	Invites              []string // nicks invited past +i
	History              []historyLine
}

type historyLine struct {
	From, Text string
	Notice     bool
}

// connState is the snapshot of one connection.
type connState struct {
	Registered      bool
	Nick            string // the registered nick, or the one given so far
	User, Real      string
	In              []byte // read, not handled
	Discard         bool   // dropping the rest of a too-long line
	Skipped         uint32 // bytes of it dropped, not yet paid for in the rate
	LongLine        uint32 // its length so far
	CapHeld         bool   // registration waits for CAP END
	PassOK          bool   // PASS gave the server password
	Out             []byte // queued, not written
	Inherited       uint32 // of Out, the first bytes a source's kernel had not sent
	PingOutstanding bool
	Junk            uint32
	BytesIn         uint64
	BytesOut        uint64
}

func (st *sharedState) encode() []byte {
	var e wire.Encoder
	e.U8(sharedVersion)
	e.U32(st.MaxUsers)
	e.U32(uint32(len(st.Users)))
	for _, u := range st.Users {
		e.String(u.Nick)
		e.String(u.User)
		e.String(u.Real)
		e.String(u.Host)
		e.String(u.Away)
		e.Bool(u.Invisible)
		e.Bool(u.Oper)
	}
	e.U32(uint32(len(st.Channels)))
	for _, ch := range st.Channels {
		e.String(ch.Name)
		e.String(ch.Topic)
		e.String(ch.TopicBy)
		e.U64(uint64(ch.TopicAt))
		e.U64(uint64(ch.Created))
		e.U8(ch.Modes)
		e.String(ch.Key)
		e.U32(ch.Limit)
		for _, list := range [][]string{ch.Members, ch.Ops, ch.Voices, ch.Invites} {
			e.U32(uint32(len(list)))
			for _, m := range list {
				e.String(m)
			}
		}
		e.U32(uint32(len(ch.History)))
		for _, h := range ch.History {
			e.String(h.From)
			e.String(h.Text)
			e.Bool(h.Notice)
		}
	}
	return e.Data()
}

// count reads a list length and checks it against max.
func count(d *wire.Decoder, max int, what string) (int, error) {
	n := d.U32()
	if err := d.Err(); err != nil {
		return 0, err
	}
	if uint64(n) > uint64(max) {
		return 0, fmt.Errorf("%d %s, at most %d", n, what, max)
	}
	return int(n), nil
}

// nickList reads a list of at most max distinct nicks, each of which ok
// (given the folded nick) accepts.
func nickList(d *wire.Decoder, max int, what string, ok func(string) bool) ([]string, error) {
	n, err := count(d, max, what)
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for range n {
		nick := d.String(MaxNickLen)
		if d.Err() != nil {
			return nil, d.Err()
		}
		if !ValidNick(nick) || !ok(fold(nick)) || seen[fold(nick)] {
			return nil, fmt.Errorf("%s: %q unknown or repeated", what, nick)
		}
		seen[fold(nick)] = true
		out = append(out, nick)
	}
	return out, nil
}

func decodeShared(b []byte) (*sharedState, error) {
	st, err := decodeSharedFields(b)
	if err != nil {
		return nil, fmt.Errorf("shared snapshot: %w", err)
	}
	return st, nil
}

func decodeSharedFields(b []byte) (*sharedState, error) {
	d := wire.NewDecoder(b)
	if v := d.U8(); d.Err() == nil && v != sharedVersion {
		return nil, fmt.Errorf("version %d, want %d", v, sharedVersion)
	}
	st := &sharedState{MaxUsers: d.U32()}
	if d.Err() == nil && st.MaxUsers > maxSnapUsers {
		return nil, fmt.Errorf("peak of %d users, at most %d", st.MaxUsers, maxSnapUsers)
	}
	n, err := count(d, maxSnapUsers, "users")
	if err != nil {
		return nil, err
	}
	nicks := map[string]bool{}
	for range n {
		u := userSnap{Nick: d.String(MaxNickLen), User: d.String(maxUserLen), Real: d.String(maxRealLen), Host: d.String(64),
			Away: d.String(maxAwayLen), Invisible: d.Bool(), Oper: d.Bool()}
		if d.Err() != nil {
			return nil, d.Err()
		}
		if !validText(u.Away) {
			return nil, fmt.Errorf("user %q: bad away message", u.Nick)
		}
		if !ValidNick(u.Nick) || nicks[fold(u.Nick)] {
			return nil, fmt.Errorf("user %q: bad or repeated nick", u.Nick)
		}
		if !validWord(u.User) || !validWord(u.Host) || !validText(u.Real) {
			return nil, fmt.Errorf("user %q: bad user, host or real name", u.Nick)
		}
		nicks[fold(u.Nick)] = true
		st.Users = append(st.Users, u)
	}
	if n, err = count(d, maxSnapChannels, "channels"); err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for range n {
		ch := chanSnap{Name: d.String(MaxChannelLen), Topic: d.String(MaxTopicLen), TopicBy: d.String(MaxNickLen)}
		ch.TopicAt = int64(d.U64())
		ch.Created = int64(d.U64())
		ch.Modes = d.U8()
		ch.Key = d.String(maxKeyLen)
		ch.Limit = d.U32()
		if d.Err() != nil {
			return nil, d.Err()
		}
		if !ValidChannel(ch.Name) || names[fold(ch.Name)] || !validText(ch.Topic) || !validText(ch.TopicBy) {
			return nil, fmt.Errorf("channel %q: bad or repeated name, or bad topic", ch.Name)
		}
		if ch.Modes&^knownModes != 0 || (ch.Key != "" && !validKey(ch.Key)) {
			return nil, fmt.Errorf("channel %s: unknown modes %#x or bad key", ch.Name, ch.Modes)
		}
		names[fold(ch.Name)] = true
		var err error
		members := map[string]bool{}
		if ch.Members, err = nickList(d, len(st.Users), "members", func(n string) bool { return nicks[n] }); err != nil {
			return nil, fmt.Errorf("channel %s: %w", ch.Name, err)
		}
		for _, n := range ch.Members {
			members[fold(n)] = true
		}
		if len(ch.Members) == 0 {
			return nil, fmt.Errorf("channel %s: no members", ch.Name)
		}
		if ch.Ops, err = nickList(d, len(ch.Members), "operators", func(n string) bool { return members[n] }); err != nil {
			return nil, fmt.Errorf("channel %s: %w", ch.Name, err)
		}
		if ch.Voices, err = nickList(d, len(ch.Members), "voices", func(n string) bool { return members[n] }); err != nil {
			return nil, fmt.Errorf("channel %s: %w", ch.Name, err)
		}
		if ch.Invites, err = nickList(d, maxInvites, "invites", func(string) bool { return true }); err != nil {
			return nil, fmt.Errorf("channel %s: %w", ch.Name, err)
		}
		h, err := count(d, maxSnapHistory, "history lines")
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", ch.Name, err)
		}
		for range h {
			l := historyLine{From: d.String(MaxNickLen), Text: d.String(maxSnapText), Notice: d.Bool()}
			if d.Err() != nil {
				return nil, d.Err()
			}
			if !validText(l.From) || !validText(l.Text) {
				return nil, fmt.Errorf("channel %s: bad history line", ch.Name)
			}
			ch.History = append(ch.History, l)
		}
		st.Channels = append(st.Channels, ch)
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return st, nil
}

func (cs *connState) encode() []byte {
	var e wire.Encoder
	e.U8(connVersion)
	e.Bool(cs.Registered)
	e.String(cs.Nick)
	e.String(cs.User)
	e.String(cs.Real)
	e.Bytes(cs.In)
	e.Bool(cs.Discard)
	e.U32(cs.Skipped)
	e.U32(cs.LongLine)
	e.Bool(cs.CapHeld)
	e.Bool(cs.PassOK)
	e.Bytes(cs.Out)
	e.U32(cs.Inherited)
	e.Bool(cs.PingOutstanding)
	e.U32(cs.Junk)
	e.U64(cs.BytesIn)
	e.U64(cs.BytesOut)
	return e.Data()
}

func decodeConn(b []byte) (*connState, error) {
	d := wire.NewDecoder(b)
	if v := d.U8(); d.Err() == nil && v != connVersion {
		return nil, fmt.Errorf("connection snapshot: version %d, want %d", v, connVersion)
	}
	cs := &connState{
		Registered: d.Bool(),
		Nick:       d.String(MaxNickLen),
		User:       d.String(maxUserLen),
		Real:       d.String(maxRealLen),
		In:         d.Bytes(maxSnapIn),
		Discard:    d.Bool(),
		Skipped:    d.U32(),
		LongLine:   d.U32(),
		CapHeld:    d.Bool(),
		PassOK:     d.Bool(),
		Out:        d.Bytes(maxSnapOut),
	}
	cs.Inherited = d.U32()
	cs.PingOutstanding = d.Bool()
	cs.Junk = d.U32()
	cs.BytesIn = d.U64()
	cs.BytesOut = d.U64()
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("connection snapshot: %w", err)
	}
	if uint64(cs.Inherited) > uint64(len(cs.Out)) {
		return nil, fmt.Errorf("connection snapshot: %d bytes inherited of %d queued", cs.Inherited, len(cs.Out))
	}
	if cs.Skipped > maxSnapIn {
		return nil, fmt.Errorf("connection snapshot: %d bytes skipped, at most %d", cs.Skipped, maxSnapIn)
	}
	if (cs.Nick != "" || cs.Registered) && !ValidNick(cs.Nick) {
		return nil, fmt.Errorf("connection snapshot: bad nick %q", cs.Nick)
	}
	if (cs.User != "" || cs.Registered) && !validWord(cs.User) || !validText(cs.Real) {
		return nil, fmt.Errorf("connection snapshot: bad user %q or real name", cs.User)
	}
	return cs, nil
}

// CheckShared reports whether Adopt would take this shared snapshot, and
// CheckConn whether it would take a connection with this one: a target
// checks them before it reports its sockets rebuilt, so a snapshot it
// would refuse rolls the hand-off back instead of losing connections
// after the commit. (The source checks its own, before the freeze.)
func (s *Server) CheckShared(shared []byte) error {
	if _, err := decodeShared(shared); err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	return nil
}

// CheckConn: see CheckShared.
func (s *Server) CheckConn(state []byte) error {
	if _, err := decodeConn(state); err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	return nil
}
