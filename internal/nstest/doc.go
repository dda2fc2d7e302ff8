// Package nstest gives tests their own network namespaces: named, unique,
// and always removed, so a test never touches the host's own network.
//
// Tests that need root (CAP_NET_ADMIN) call Privileged first: outside CI it
// skips with the reason, under CI=true it fails, because CI runs as root and
// no test may skip there.
package nstest
