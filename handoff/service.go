package handoff

import (
	"context"
	"net"
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
	// snapshot of the source. It must not block.
	Adopt(shared []byte, conns []Adopted) error
}

// Paused is a service stopped for a hand-off.
type Paused interface {
	// Shared is the snapshot of state shared by all connections.
	Shared() []byte
	// Conns lists the paused connections and their snapshots.
	Conns() []PausedConn
	// Resume lets the connections go on here: the hand-off was rolled back.
	Resume()
	// Release forgets the connections: they moved. The library closes their
	// sockets (silently); the service must not touch them again.
	Release()
}

// PausedConn is one paused connection and its application snapshot.
type PausedConn struct {
	Conn  *net.TCPConn
	State []byte
}

// Adopted is one connection rebuilt on this host.
type Adopted struct {
	Conn  *net.TCPConn
	State []byte
	// Unsent holds bytes the source application had already written but
	// its kernel had not yet sent. Write them before anything else.
	Unsent []byte
}
