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

// TestJournalRewritesALongerRecord: a process that starts again rewrites a
// record its predecessor left, shorter than it was (a restarted target
// turns "resuming" with two addresses into "lost"), and reads it back whole.
// The record once kept the old one's tail, and the restarted node refused to
// start ("not a hand-off record").
func TestJournalRewritesALongerRecord(t *testing.T) {
	dir := t.TempDir()
	r := &record{ID: 7, Role: "target", Peer: netip.MustParseAddr("192.0.2.1"),
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100"), netip.MustParseAddr("192.0.2.101")}, State: jResuming}
	old := newJournal(dir)
	if err := old.write(r); err != nil {
		t.Fatal(err)
	}
	old.release(r) // the process dies; the file stays
	again := newJournal(dir)
	short := &record{ID: 7, Role: "target", State: jLost}
	if err := again.write(short); err != nil {
		t.Fatal(err)
	}
	recs, err := again.read()
	if err != nil {
		t.Fatalf("the rewritten record: %v", err)
	}
	if len(recs) != 1 || recs[0].State != jLost || len(recs[0].Addrs) != 0 {
		t.Fatalf("read back %+v, want the short record alone", recs)
	}
}
