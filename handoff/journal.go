package handoff

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The journal is where a node writes down a hand-off's progress before it
// acts on it, so that a process killed at any step is settled when it
// starts again (see "What happens when a process dies" in the package
// doc). One small file per hand-off and side, replaced atomically (write,
// fsync, rename, fsync the folder): a reader finds the old record or the
// new one, never half of either.

// Journal states. A source writes released before it removes an address,
// commit before it sends the decision, rollback before it takes the
// addresses back. A target writes committed before it adds an address,
// resuming before the first socket leaves repair mode, resumed once its
// sockets serve; lost (or lost-resuming) when it restarted after committed
// (or resuming): its rebuilt sockets died with it, and it removed the
// addresses again.
const (
	jReleased  = "released"
	jCommit    = "commit"
	jRollback  = "rollback"
	jCommitted = "committed"
	jResuming  = "resuming"
	jResumed   = "resumed"
	jLost      = "lost"
	jLostSome  = "lost-resuming"
)

// record is one hand-off as one side wrote it down.
type record struct {
	ID    uint64       `json:"id"`
	Role  string       `json:"role"` // "source" or "target"
	Peer  netip.Addr   `json:"peer"` // the other node's channel address
	Addrs []netip.Addr `json:"addrs"`
	State string       `json:"state"`
	Time  time.Time    `json:"time"`
}

// journal is a folder of records; the zero value (no folder) keeps
// nothing, and a node without one cannot settle after a process death.
type journal struct{ dir string }

// keepFinished is how many finished target records are kept: a source
// whose channel broke after the commit asks the target how it ended, and
// "I know nothing of it" must mean the target never took the addresses.
const keepFinished = 64

func (j journal) path(r *record) string {
	return filepath.Join(j.dir, r.Role+"-"+strconv.FormatUint(r.ID, 16)+".json")
}

// write stores r durably, replacing its earlier state.
func (j journal) write(r *record) error {
	if j.dir == "" {
		return nil
	}
	r.Time = time.Now()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	tmp, err := os.CreateTemp(j.dir, ".record-*")
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), j.path(r))
	}
	if err == nil {
		err = j.syncDir()
	}
	if err != nil {
		return fmt.Errorf("journal: hand-off %x: %w", r.ID, err)
	}
	return nil
}

// remove forgets a settled hand-off.
func (j journal) remove(r *record) error {
	if j.dir == "" {
		return nil
	}
	if err := os.Remove(j.path(r)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return j.syncDir()
}

func (j journal) syncDir() error {
	d, err := os.Open(j.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// read returns every record, oldest first. A record that cannot be read
// is an error: guessing would risk an address on two servers.
func (j journal) read() ([]*record, error) {
	if j.dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(j.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []*record
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(j.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		r := &record{}
		if err := json.Unmarshal(b, r); err != nil || (r.Role != "source" && r.Role != "target") {
			return nil, fmt.Errorf("journal: %s is not a hand-off record (%v): move it away to start", e.Name(), err)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *record) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// find returns the record of a hand-off in a role, or nil.
func (j journal) find(role string, id uint64) *record {
	if j.dir == "" {
		return nil
	}
	b, err := os.ReadFile(j.path(&record{Role: role, ID: id}))
	if err != nil {
		return nil
	}
	r := &record{}
	if json.Unmarshal(b, r) != nil {
		return nil
	}
	return r
}

// prune drops the oldest finished target records beyond keepFinished.
func (j journal) prune() {
	all, err := j.read()
	if err != nil {
		return
	}
	var finished []*record
	for _, r := range all {
		if r.Role == "target" && (r.State == jResumed || r.State == jLost || r.State == jLostSome) {
			finished = append(finished, r)
		}
	}
	for len(finished) > keepFinished {
		j.remove(finished[0])
		finished = finished[1:]
	}
}

// newID names a hand-off on both sides and in both journals.
func newID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0, which means "none"
}
