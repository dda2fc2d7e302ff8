package console

import (
	"strings"
	"testing"

	"github.com/sockshift/sockshift/web"
)

// The VM lab's console has no capture: a broken hand-off's note says only
// what the client's neighbour entry showed, never that segments were
// dropped or reset.
func TestNeighbourNoteSaysWhatTheEntryShowed(t *testing.T) {
	st := web.State{Nodes: []web.Node{{Name: "a", MAC: "02:00:00:00:00:01"}, {Name: "b", MAC: "02:00:00:00:00:02"}}}
	for _, tc := range []struct{ mac, want string }{
		{"02:00:00:00:00:01", "still named server a's MAC"},
		{"02:00:00:00:00:02", "named server b's MAC"},
		{"02:00:00:00:00:09", "neither server's MAC"},
		{"", "no neighbour entry"},
	} {
		got := neighbourNote("a", "b", tc.mac, st)
		if !strings.Contains(got, tc.want) || strings.Contains(got, "dropped") || strings.Contains(got, "reset") {
			t.Errorf("entry %q: note %q, want %q and no claim it cannot see", tc.mac, got, tc.want)
		}
	}
}
