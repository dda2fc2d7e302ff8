package handoff

import (
	"context"
	"net"
	"net/netip"
)

// Service is an application whose connections can move between hosts.
type Service interface {
	// Name identifies the service on both hosts ("echo", "chat").
	Name() string
	// Quiesce stops every connection at a clean point (no byte read but
	// not yet handled) and snapshots the service's state. It returns by
	// ctx's deadline; on error nothing may stay paused.
	Quiesce(ctx context.Context) (Paused, error)
	// Adopt takes over connections restored on this host, with the shared
	// snapshot of the source. It must not block. The service may already
	// serve clients of its own here: Adopt adds to them.
	Adopt(shared []byte, conns []Adopted) error
}

// SharedChecker is an optional interface of a Service: the target checks
// the source's shared snapshot with it before it reports the sockets
// rebuilt, so a snapshot Adopt would refuse keeps the service (and its
// address) on the source instead of failing after the commit.
type SharedChecker interface {
	CheckShared(shared []byte) error
}

// ConnChecker is an optional interface of a Service: the target checks
// each connection's snapshot with it before it reports the sockets
// rebuilt. A refused one is a connection the target cannot rebuild: it
// stays on the source, with its address (see "Which connections move").
type ConnChecker interface {
	CheckConn(state []byte) error
}

// Paused is a service stopped for a hand-off.
//
// The library decides, per connection, whether it moves: a connection
// moves only if it is on an address the hand-off moves, the service did
// not ask to keep it (PausedConn.Stay), and the target rebuilt it. Every
// other connection stays here and must be served on as if never paused.
// Settle is the one place the service learns the outcome, so no
// connection can be left paused or served twice.
type Paused interface {
	// Shared is the snapshot of state shared by the connections. Clients
	// that it names but that do not move are simply absent on the target.
	Shared() []byte
	// Conns lists every paused connection with its snapshot. A connection
	// missing from the list is neither moved nor resumed by the library:
	// list them all.
	Conns() []PausedConn
	// Settle ends the pause. The library calls it exactly once per
	// Quiesce, after a commit or a rollback. For each connection c listed
	// by Conns, moved(c) reports whether it now belongs to the target: if
	// so, the service forgets it without touching its socket (the library
	// closes it, silently); if not, the service resumes it here. On a
	// rollback moved is false for every connection.
	Settle(moved func(*net.TCPConn) bool)
}

// PausedConn is one paused connection and its application snapshot.
type PausedConn struct {
	Conn  *net.TCPConn
	State []byte
	// Stay, if not empty, asks the library to keep this connection here,
	// and says why (shown in the report). A connection cannot outlive the
	// address it was made to, so everything on its service address stays
	// with it: a declined connection keeps its whole address here.
	Stay string
}

// Adopted is one connection rebuilt on this host.
type Adopted struct {
	Conn  *net.TCPConn
	State []byte
	// Unsent holds bytes the source application had already written but
	// its kernel had not yet sent. Write them before anything else.
	Unsent []byte
	// New says the source's kernel accepted the connection during the
	// hand-off and its service never saw it (Pauser.Listen): no State;
	// serve it as a connection just accepted. Its client may already have
	// sent bytes: they wait in the socket.
	New bool
}

// StayedConn is a connection that stayed on the source, and why.
type StayedConn struct {
	Service string
	Client  netip.AddrPort // the remote end
	Local   netip.AddrPort // the address the client connected to
	Reason  string
}

// settleAll ends every pause with the verdict moved.
func settleAll(paused []Paused, moved func(*net.TCPConn) bool) {
	for _, p := range paused {
		p.Settle(moved)
	}
}

// nothingMoved is the verdict of a rollback.
func nothingMoved(*net.TCPConn) bool { return false }
