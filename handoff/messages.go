package handoff

import (
	"fmt"
	"net/netip"

	"github.com/sockshift/sockshift/handoff/internal/bufpool"
	"github.com/sockshift/sockshift/handoff/repair"
	"github.com/sockshift/sockshift/handoff/wire"
)

// Message types on the hand-off channel.
const (
	msgPrepare      uint8 = 1 + iota // source → target: what is coming
	msgReady                         // target → source: ready, and its name
	msgService                       // source → target: one service's shared snapshot
	msgConns                         // source → target: a batch of connections
	msgTransferDone                  // source → target: all sent
	msgRestored                      // target → source: rebuilt (frozen) and announced, or not
	msgCommit                        // source → target: the point of no return
	msgAbort                         // source → target: roll back
	msgResumed                       // target → source: serving
	msgAborted                       // target → source: rolled back
	msgRefused                       // target → source: will not take part
	_                                // (retired: announced, holding)
	_                                // (retired: resume now)
	msgSettle                        // source → target, on a new channel: the decision of an interrupted hand-off
	msgSettled                       // target → source: how that hand-off ends here
)

// Prepare flags.
const (
	flagPaced uint8 = 1 << iota // a person steps through: long deadlines
)

// Bounds on what a peer may send; the wire layer bounds each frame too.
const (
	maxServices  = 16
	maxName      = 64
	maxReason    = 1024
	maxSnapshot  = 64 << 20
	maxConnState = 160 << 20
	// MaxConns bounds the connections of one hand-off.
	MaxConns = 100000
)

func msgName(t uint8) string {
	names := [...]string{"?", "prepare", "ready", "service", "conns", "transfer-done",
		"restored", "commit", "abort", "resumed", "aborted", "refused", "announced", "resume", "settle", "settled"}
	if int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("type %d", t)
}

type prepareMsg struct {
	// Services names the services that move, and Addrs each one's
	// address, in the same order; the target checks both against its own.
	Services []string
	Addrs    []netip.Addr
	// Conns is about how many connections may come: the source's open
	// descriptors. The target makes room for them before the freeze.
	Conns uint32
	Flags uint8
	// ID names the hand-off in both journals and in a later Settle.
	ID uint64
}

func (m prepareMsg) encode() []byte {
	var e wire.Encoder
	e.U16(uint16(len(m.Services)))
	for i, s := range m.Services {
		e.String(s)
		e.Bytes(m.Addrs[i].AsSlice())
	}
	e.U32(m.Conns)
	e.U8(m.Flags)
	e.U64(m.ID)
	return e.Data()
}

func (m *prepareMsg) decode(b []byte) error {
	d := wire.NewDecoder(b)
	n := int(d.U16())
	if n > maxServices {
		return fmt.Errorf("prepare: %d services (at most %d): %w", n, maxServices, wire.ErrMalformed)
	}
	m.Services, m.Addrs = nil, nil
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Services = append(m.Services, d.String(maxName))
		ip, ok := netip.AddrFromSlice(d.Bytes(16))
		if d.Err() == nil && !ok {
			return fmt.Errorf("prepare: bad address of service %q: %w", m.Services[i], wire.ErrMalformed)
		}
		m.Addrs = append(m.Addrs, ip)
	}
	m.Conns = d.U32()
	m.Flags = d.U8()
	m.ID = d.U64()
	if err := d.Finish(); err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

type serviceMsg struct {
	Index  uint16
	Shared []byte
	Conns  uint32
}

func (m serviceMsg) encode() []byte {
	var e wire.Encoder
	e.U16(m.Index)
	e.Bytes(m.Shared)
	e.U32(m.Conns)
	return e.Data()
}

func (m *serviceMsg) decode(b []byte) error {
	d := wire.NewDecoder(b)
	m.Index = d.U16()
	m.Shared = d.Bytes(maxSnapshot)
	m.Conns = d.U32()
	if err := d.Finish(); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}

// newConn marks, in a connEntry's service index, a connection accepted
// during the hand-off (indexes stay below maxServices).
const newConn = 1 << 15

// connEntry is one connection in a Conns message.
type connEntry struct {
	Service uint16
	New     bool   // accepted during the hand-off: the service never saw it
	TCP     []byte // repair.State, binary
	App     []byte // the service's snapshot of the connection

	// state, on the source instead of TCP for a connection with large
	// queues: encoded straight into the frame, with no copy between.
	state *repair.State
}

// tcpLen is the length of the entry's encoded repair.State.
func (c connEntry) tcpLen() int {
	if c.state != nil {
		return c.state.EncodedLen()
	}
	return len(c.TCP)
}

// bigState is the queued bytes from which a state is encoded straight into
// its frame rather than marshaled by the dump worker: every copy of
// megabytes into fresh memory costs a few ms of page faults.
const bigState = 256 << 10

// Batches keep syscalls and MACs per connection low when thousands move.
const (
	batchConns = 256
	batchBytes = 256 << 10
	maxBatch   = 4096
)

// encodeConns encodes a batch into one buffer of the right size (a
// recycled one when large), with room for the seal, so that the channel
// can seal it in place.
func encodeConns(entries []connEntry) ([]byte, error) {
	size := 4
	for _, c := range entries {
		size += 2 + 4 + c.tcpLen() + 4 + len(c.App)
	}
	e := wire.NewEncoder(bufpool.Get(size + wire.TagLen))
	e.U32(uint32(len(entries)))
	for _, c := range entries {
		svc := c.Service
		if c.New {
			svc |= newConn
		}
		e.U16(svc)
		if c.state != nil {
			e.AppendField(c.state.EncodedLen(), c.state.AppendBinary)
		} else {
			e.Bytes(c.TCP)
		}
		e.Bytes(c.App)
	}
	if err := e.Err(); err != nil {
		return nil, fmt.Errorf("conns: %w", err)
	}
	return e.Data(), nil
}

func decodeConns(b []byte) ([]connEntry, error) {
	d := wire.NewDecoder(b)
	n := d.U32()
	if n > maxBatch {
		return nil, fmt.Errorf("conns: batch of %d (at most %d): %w", n, maxBatch, wire.ErrMalformed)
	}
	var out []connEntry
	for i := uint32(0); i < n && d.Err() == nil; i++ {
		// In place: the payload is this message's own (see wire.Conn.Recv).
		svc := d.U16()
		out = append(out, connEntry{Service: svc &^ newConn, New: svc&newConn != 0, TCP: d.View(maxConnState), App: d.View(maxSnapshot)})
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("conns: %w", err)
	}
	return out, nil
}

// resultMsg answers a step: Ready, Restored, Resumed, Aborted, Refused.
type resultMsg struct {
	OK     bool
	Reason string
	Name   string   // the target's name (Ready)
	MAC    []byte   // the target's MAC, where caught packets go (Ready)
	Conns  uint32   // connections handled
	Timing []uint64 // target-side phase durations, microseconds
	Extra  []byte   // Restored: read-back summaries (encodeAfter)
	// Refused lists the service addresses whose connections the target
	// would not take (Restored): they stay on the source.
	Refused []refusal
}

// refusal is a service address the target refused, and why.
type refusal struct {
	Addr   netip.Addr
	Reason string
}

func (m resultMsg) encode() []byte {
	var e wire.Encoder
	e.Bool(m.OK)
	e.String(m.Reason)
	e.String(m.Name)
	e.Bytes(m.MAC)
	e.U32(m.Conns)
	e.U8(uint8(len(m.Timing)))
	for _, t := range m.Timing {
		e.U64(t)
	}
	e.Bytes(m.Extra)
	e.U8(uint8(len(m.Refused)))
	for _, r := range m.Refused {
		e.Bytes(r.Addr.AsSlice())
		e.String(r.Reason)
	}
	return e.Data()
}

func (m *resultMsg) decode(b []byte) error {
	d := wire.NewDecoder(b)
	m.OK = d.Bool()
	m.Reason = d.String(maxReason)
	m.Name = d.String(maxName)
	m.MAC = d.Bytes(maxName)
	m.Conns = d.U32()
	n := int(d.U8())
	m.Timing = nil
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Timing = append(m.Timing, d.U64())
	}
	m.Extra = d.Bytes(maxSnapshot)
	n = int(d.U8())
	if n > maxServices {
		return fmt.Errorf("result: %d refusals (at most %d): %w", n, maxServices, wire.ErrMalformed)
	}
	m.Refused = nil
	for i := 0; i < n && d.Err() == nil; i++ {
		ip, ok := netip.AddrFromSlice(d.Bytes(16))
		reason := d.String(maxReason)
		if d.Err() == nil && !ok {
			return fmt.Errorf("result: bad refused address: %w", wire.ErrMalformed)
		}
		m.Refused = append(m.Refused, refusal{Addr: ip, Reason: reason})
	}
	if err := d.Finish(); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	return nil
}

// settleMsg carries a source's decision on an interrupted hand-off, on a
// channel of its own: the first channel broke, or the source restarted.
type settleMsg struct {
	ID     uint64
	Commit bool // false: abort
}

func (m settleMsg) encode() []byte {
	var e wire.Encoder
	e.U64(m.ID)
	e.Bool(m.Commit)
	return e.Data()
}

func (m *settleMsg) decode(b []byte) error {
	d := wire.NewDecoder(b)
	m.ID = d.U64()
	m.Commit = d.Bool()
	if err := d.Finish(); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	return nil
}

// Settled outcomes: how a hand-off ended on the target.
const (
	settledResumed  uint8 = 1 + iota // committed, its sockets serve here, Addrs are here
	settledLost                      // committed, but the target died before its sockets served; it holds nothing
	settledUnknown                   // never committed here (discarded, or never rebuilt): it holds nothing
	settledAborted                   // discarded on this Settle's abort
	settledBusy                      // being decided right now: ask again
	settledLostSome                  // as lost, but it died while resuming: the connections it had resumed died with it
)

type settledMsg struct {
	Outcome uint8
	Addrs   []netip.Addr // the addresses the target holds for it
	Conns   uint32       // connections serving on the target
}

func (m settledMsg) encode() []byte {
	var e wire.Encoder
	e.U8(m.Outcome)
	e.U8(uint8(len(m.Addrs)))
	for _, a := range m.Addrs {
		e.Bytes(a.AsSlice())
	}
	e.U32(m.Conns)
	return e.Data()
}

func (m *settledMsg) decode(b []byte) error {
	d := wire.NewDecoder(b)
	m.Outcome = d.U8()
	n := int(d.U8())
	if n > maxServices {
		return fmt.Errorf("settled: %d addresses (at most %d): %w", n, maxServices, wire.ErrMalformed)
	}
	m.Addrs = nil
	for i := 0; i < n && d.Err() == nil; i++ {
		ip, ok := netip.AddrFromSlice(d.Bytes(16))
		if d.Err() == nil && !ok {
			return fmt.Errorf("settled: bad address: %w", wire.ErrMalformed)
		}
		m.Addrs = append(m.Addrs, ip.Unmap())
	}
	m.Conns = d.U32()
	if err := d.Finish(); err != nil {
		return fmt.Errorf("settled: %w", err)
	}
	if m.Outcome < settledResumed || m.Outcome > settledLostSome {
		return fmt.Errorf("settled: outcome %d: %w", m.Outcome, wire.ErrMalformed)
	}
	return nil
}
