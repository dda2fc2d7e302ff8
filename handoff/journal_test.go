package handoff

import (
	"net/netip"
	"testing"
)

// BenchmarkJournalWrite is one step's record: what each irreversible step
// of a hand-off adds to the switch.
func BenchmarkJournalWrite(b *testing.B) {
	j := newJournal(b.TempDir())
	r := &record{ID: newID(), Role: "source", Peer: netip.MustParseAddr("192.0.2.2"),
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}, State: jPrepared}
	if err := j.write(r); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r.State = jCommit
		if err := j.write(r); err != nil {
			b.Fatal(err)
		}
	}
}
