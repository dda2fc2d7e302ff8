//go:build !linux

package handoff

import (
	"errors"
	"net/netip"
	"testing"
)

// TestNewNodeUnsupported: outside Linux a node cannot be made, and the
// error says so in the standard way.
func TestNewNodeUnsupported(t *testing.T) {
	_, err := NewNode(Config{Name: "a", Addr: netip.MustParseAddr("192.0.2.1"), Interface: "eth0",
		VIP: netip.MustParseAddr("192.0.2.100"), Key: make([]byte, 32)})
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("NewNode: %v, want errors.ErrUnsupported", err)
	}
}
