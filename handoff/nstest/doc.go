// Package nstest gives tests their own network namespaces: named, unique,
// and always removed, so a test never touches the host's own network.
// The library's tests run hand-offs between such namespaces, and a
// service's own tests can do the same (handoff's Example is tested so:
// TestExampleHandsOff).
//
// Tests that need root (CAP_NET_ADMIN) call Privileged first: outside CI it
// skips with the reason, under CI=true it fails, because CI runs as root and
// no test may skip there.
package nstest
