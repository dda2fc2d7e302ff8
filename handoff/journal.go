package handoff

import (
	"bytes"
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
	"sync"
	"time"
)

// The journal is where a node writes down a hand-off's progress before it
// acts on it, so that a process killed at any step is settled when it
// starts again (see "What happens when a process dies" in the package
// doc). One small file per hand-off and side, opened before the freeze
// and rewritten in place with one pwrite per step: a write that returned
// is in the kernel's page cache, which outlives the process (no fsync: a
// machine that crashes loses its sockets too, so nothing is left to
// settle), and a process killed mid-call never leaves half a write of a
// few hundred bytes. That keeps each step's record to microseconds.

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

// jPrepared is a record opened before anything irreversible: a node that
// restarts finds nothing to settle in it.
const jPrepared = "prepared"

// journal is a folder of records; one without a folder keeps nothing, and
// a node without one cannot settle after a process death.
type journal struct {
	dir string

	mu       sync.Mutex
	files    map[string]*journalFile // open records, by path
	finished []string                // finished target records, oldest first (see finish)
}

type journalFile struct {
	f    *os.File
	size int // bytes of the longest record written: shorter ones are padded
}

func newJournal(dir string) *journal {
	return &journal{dir: dir, files: map[string]*journalFile{}}
}

// keepFinished is how many finished target records are kept: a source
// whose channel broke after the commit asks the target how it ended, and
// "I know nothing of it" must mean the target never took the addresses.
const keepFinished = 64

func (j *journal) path(r *record) string {
	return filepath.Join(j.dir, r.Role+"-"+strconv.FormatUint(r.ID, 16)+".json")
}

// write stores r, replacing its earlier state in place.
func (j *journal) write(r *record) error {
	if j == nil || j.dir == "" {
		return nil
	}
	r.Time = time.Now()
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	path := j.path(r)
	jf := j.files[path]
	if jf == nil {
		if err := os.MkdirAll(j.dir, 0o700); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		jf = &journalFile{f: f}
		// A record another process wrote may be longer than this one:
		// padding covers all of it.
		if fi, err := f.Stat(); err == nil {
			jf.size = int(fi.Size())
		}
		j.files[path] = jf
	}
	// Padded with spaces (valid JSON) over what an earlier, longer state
	// wrote, so one write replaces the record whole.
	if len(b) < jf.size {
		b = append(b, bytes.Repeat([]byte(" "), jf.size-len(b))...)
	}
	jf.size = len(b)
	if _, err := jf.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("journal: hand-off %x: %w", r.ID, err)
	}
	return nil
}

// release closes a record's file and keeps the record (a finished target
// record answers a later question).
func (j *journal) release(r *record) {
	if j == nil || j.dir == "" {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if jf := j.files[j.path(r)]; jf != nil {
		jf.f.Close()
		delete(j.files, j.path(r))
	}
}

// remove forgets a settled hand-off.
func (j *journal) remove(r *record) error {
	if j == nil || j.dir == "" {
		return nil
	}
	j.release(r)
	if err := os.Remove(j.path(r)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// read returns every record, oldest first. A record that cannot be read
// is an error: guessing would risk an address on two servers. An empty
// file (a process killed between creating and writing it) held nothing.
func (j *journal) read() ([]*record, error) {
	if j == nil || j.dir == "" {
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
		path := filepath.Join(j.dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			os.Remove(path)
			continue
		}
		r := &record{}
		if err := json.Unmarshal(b, r); err != nil || (r.Role != "source" && r.Role != "target") {
			return nil, fmt.Errorf("journal: %s is not a hand-off record (%v): move it away to start", path, err)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *record) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// find returns the record of a hand-off in a role, or nil.
func (j *journal) find(role string, id uint64) *record {
	if j == nil || j.dir == "" {
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

// finish closes a finished target record, keeps it to answer a source
// that asks later, and forgets the oldest beyond keepFinished: no folder
// is read on the way (Recover seeds the list).
func (j *journal) finish(r *record) {
	if j == nil || j.dir == "" {
		return
	}
	j.release(r)
	j.mu.Lock()
	j.finished = append(j.finished, j.path(r))
	var drop []string
	if n := len(j.finished) - keepFinished; n > 0 {
		drop = slices.Clone(j.finished[:n])
		j.finished = slices.Delete(j.finished, 0, n)
	}
	j.mu.Unlock()
	for _, p := range drop {
		os.Remove(p)
	}
}

// seedFinished lists the finished target records found at start, oldest
// first, for finish to forget in turn.
func (j *journal) seedFinished(recs []*record) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, r := range recs {
		if r.Role == "target" && (r.State == jResumed || r.State == jLost || r.State == jLostSome) {
			j.finished = append(j.finished, j.path(r))
		}
	}
}

// newID names a hand-off on both sides and in both journals.
func newID() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) | 1 // never 0, which means "none"
}
