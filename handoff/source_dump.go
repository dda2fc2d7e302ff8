package handoff

import (
	"context"
	"errors"
	"net/netip"
	"slices"

	"github.com/sockshift/sockshift/handoff/internal/bufpool"
	"github.com/sockshift/sockshift/handoff/repair"
)

// dump sends each moving service's shared state, then dumps every frozen
// socket and sends the states in batches as they come: the target
// restores while we dump.
func (s *source) dump(context.Context) error {
	if err := s.sendServices(); err != nil {
		return err
	}
	s.batch = &batcher{ch: s.ch}
	return s.dumpEach(s.batch.add)
}

// transfer sends what is left of the states and ends the transfer, so
// that the target finishes restoring at once.
func (s *source) transfer(context.Context) error {
	if err := s.batch.flush(); err != nil {
		return err
	}
	return s.ch.send(msgTransferDone, s.summarized())
}

// sendServices sends every moving service's shared state and its count of
// connections. The target takes the addresses of these services only.
func (s *source) sendServices() error {
	counts := make([]uint32, len(s.paused))
	for _, f := range s.frozen {
		counts[f.svc]++
	}
	for i, p := range s.paused {
		if !s.moving[i] {
			continue
		}
		msg := serviceMsg{Index: uint16(i), Shared: p.Shared(), Conns: counts[i]}
		if err := s.ch.send(msgService, msg.encode()); err != nil {
			return err
		}
	}
	return nil
}

// dumpEach dumps every frozen socket on parallel workers and hands each
// state to emit, on the calling goroutine, as it comes.
func (s *source) dumpEach(emit func(connEntry) error) error {
	type dumped struct {
		i     int
		entry connEntry
		err   error
	}
	jobs := make(chan int)
	results := make(chan dumped, 64)
	stop := make(chan struct{})
	defer close(stop)
	for w := 0; w < workers(len(s.frozen)); w++ {
		go func() {
			for i := range jobs {
				e, err := s.dumpOne(i)
				select {
				case results <- dumped{i, e, err}:
				case <-stop:
					return
				}
			}
		}()
	}
	count := len(s.frozen) // read here: the feeder may outlive this call
	go func() {
		defer close(jobs)
		for i := range count {
			select {
			case jobs <- i:
			case <-stop:
				return
			}
		}
	}()
	var gone []int
	for range s.frozen {
		r := <-results
		if errors.Is(r.err, repair.ErrNotEstablished) {
			// Reset or closed by its client since the freeze: nothing of
			// it can move, and it must not hold the others back.
			s.n.logf("not moving %v: %v", s.frozen[r.i].conn.RemoteAddr(), r.err)
			gone = append(gone, r.i)
			continue
		}
		if r.err != nil {
			return r.err
		}
		if err := emit(r.entry); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		for j := len(gone) - 1; j >= 0; j-- {
			s.ended = append(s.ended, s.frozen[gone[j]])
			s.frozen = slices.Delete(s.frozen, gone[j], gone[j]+1)
		}
		s.rep.Connections = len(s.frozen)
		s.rep.Closed += len(gone)
	}
	return nil
}

// dumpOne dumps the i-th frozen socket into its entry.
func (s *source) dumpOne(i int) (connEntry, error) {
	f := &s.frozen[i]
	e := connEntry{Service: uint16(f.svc), App: f.app, New: f.late}
	st, err := f.frozen.Dump()
	if err != nil {
		return e, err
	}
	if len(st.RecvQueue)+len(st.Unacked)+len(st.Unsent) >= bigState {
		e.state = st // released once its batch is sent
	} else if e.TCP, err = st.MarshalBinary(); err != nil {
		return e, err
	}
	f.client, f.local, f.rcvNxt = st.Remote, st.Local, st.RecvSeq+uint32(len(st.RecvQueue))
	if i < ReportedConns {
		sum := summarize(st)
		f.before = &sum
	}
	return e, nil
}

// summarized lists the clients whose states the report shows.
func (s *source) summarized() []byte {
	var clients []netip.AddrPort
	for _, f := range s.frozen {
		if f.before != nil {
			clients = append(clients, f.client)
		}
	}
	return encodeClients(clients)
}

// batcher sends connection states in batches.
type batcher struct {
	ch    channel
	batch []connEntry
	size  int
}

func (b *batcher) add(e connEntry) error {
	b.batch = append(b.batch, e)
	b.size += e.tcpLen() + len(e.App)
	if len(b.batch) >= batchConns || b.size >= batchBytes {
		return b.flush()
	}
	return nil
}

func (b *batcher) flush() error {
	if len(b.batch) == 0 {
		return nil
	}
	payload, err := encodeConns(b.batch)
	if err == nil {
		err = b.ch.sendOwned(msgConns, payload)
		bufpool.Put(payload) // sent: the kernel has the bytes
	}
	// The queues are in the frame now; their buffers serve the next dump.
	for _, e := range b.batch {
		if e.state != nil {
			e.state.Release()
		}
	}
	clear(b.batch)
	b.batch, b.size = b.batch[:0], 0
	return err
}
