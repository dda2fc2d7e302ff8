package capture

import "sync/atomic"

// SniffConfig configures Sniff. Zero fields take the defaults noted.
type SniffConfig struct {
	// Keep decides which decoded frames go into the ring; default: every
	// ARP and TCP/IPv4 frame.
	Keep func(Packet) bool
	// Seen, if set, is called for every frame kept, on the sniffer's
	// goroutine (the demo counts throughput with it). It must not block.
	Seen func(Packet)
}

// Sniffer reads frames from a packet socket into a Ring until Close.
type Sniffer struct {
	ring    *Ring
	cfg     SniffConfig
	dropped atomic.Uint64
	closer  func() error
	done    chan struct{}
}

// Dropped returns how many frames were neither ARP nor TCP/IPv4, or not
// kept.
func (s *Sniffer) Dropped() uint64 { return s.dropped.Load() }

// Close stops the sniffer and waits for its goroutine.
func (s *Sniffer) Close() error {
	err := s.closer()
	<-s.done
	return err
}

func (s *Sniffer) handle(f Frame) {
	p, err := Decode(f)
	if err != nil || (s.cfg.Keep != nil && !s.cfg.Keep(p)) {
		s.dropped.Add(1)
		return
	}
	s.ring.Add(f)
	if s.cfg.Seen != nil {
		s.cfg.Seen(p)
	}
}
