package handoff

import (
	"fmt"

	"github.com/sockshift/sockshift/handoff/wire"
)

// channel adds message-level helpers to an authenticated wire.Conn.
type channel struct{ *wire.Conn }

func (c channel) send(typ uint8, payload []byte) error {
	if err := c.Send(typ, payload); err != nil {
		return fmt.Errorf("send %s to %v: %w", msgName(typ), c.RemoteAddr(), err)
	}
	return nil
}

// sendOwned sends a payload the caller gives up (see wire.Conn.SendOwned).
func (c channel) sendOwned(typ uint8, payload []byte) error {
	if err := c.SendOwned(typ, payload); err != nil {
		return fmt.Errorf("send %s to %v: %w", msgName(typ), c.RemoteAddr(), err)
	}
	return nil
}

func (c channel) sendResult(typ uint8, r resultMsg) error { return c.send(typ, r.encode()) }

// result waits for one of the wanted result messages. A refusal or an
// unexpected type is an error.
func (c channel) result(want ...uint8) (uint8, resultMsg, error) {
	var r resultMsg
	typ, payload, err := c.Recv()
	if err != nil {
		return 0, r, fmt.Errorf("waiting for %s from %v: %w", msgName(want[0]), c.RemoteAddr(), err)
	}
	ok := false
	for _, w := range want {
		ok = ok || typ == w
	}
	if !ok && typ != msgRefused {
		return typ, r, fmt.Errorf("peer %v sent %s, want %s", c.RemoteAddr(), msgName(typ), msgName(want[0]))
	}
	if err := r.decode(payload); err != nil {
		return typ, r, fmt.Errorf("%s from %v: %w", msgName(typ), c.RemoteAddr(), err)
	}
	if typ == msgRefused {
		return typ, r, fmt.Errorf("peer %v refused: %s", c.RemoteAddr(), r.Reason)
	}
	return typ, r, nil
}
