package node

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFlagsFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "node.conf")
	os.WriteFile(conf, []byte(`# as vagrant/provision/render-config.sh writes it
name = a
iface = eth1
addr = 192.168.56.11
vip = 192.168.56.100
peer = b=192.168.56.12
key-file = /etc/sockshift/key
control = 192.168.56.11:7071
hold = true
`), 0o600)
	var m Main
	if err := m.ParseFlags([]string{"--config", conf, "--iface", "eth9"}); err != nil {
		t.Fatal(err)
	}
	if m.Name != "a" || m.Interface != "eth9" || m.Addr != netip.MustParseAddr("192.168.56.11") ||
		m.VIP != netip.MustParseAddr("192.168.56.100") || m.Peers["b"] != netip.MustParseAddr("192.168.56.12") ||
		m.Control != "192.168.56.11:7071" || !m.Hold || m.KeyFile != "/etc/sockshift/key" {
		t.Fatalf("parsed %+v", m)
	}
}

func TestControlMustNotListenEverywhere(t *testing.T) {
	own := netip.MustParseAddr("192.168.56.11")
	for _, c := range []struct {
		where string
		ok    bool
	}{
		{"/run/sockshift/a.sock", true},
		{"192.168.56.11:7071", true},
		{"127.0.0.1:7071", true},
		{":7071", false},
		{"0.0.0.0:7071", false},
		{"192.168.56.12:7071", false},
		{"nodes.example:7071", false},
		{"7071", false},
	} {
		if err := checkControl(c.where, own); (err == nil) != c.ok {
			t.Errorf("checkControl(%q) = %v, want ok=%v", c.where, err, c.ok)
		}
	}
	var m Main
	err := m.ParseFlags([]string{"--name", "a", "--addr", "192.168.56.11", "--key-file", "k", "--control", "0.0.0.0:7071"})
	if err == nil || !strings.Contains(err.Error(), "own address") {
		t.Fatalf("--control 0.0.0.0:7071: %v", err)
	}
}

func TestControlTokenRequiredOverTCP(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 1
	token := ControlToken(key)
	if token == ControlToken(make([]byte, 32)) || len(token) != 64 {
		t.Fatalf("token %q does not depend on the key", token)
	}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, State{Name: "a", Connections: []Connection{}})
	})
	srv := httptest.NewServer(requireToken(token, inner))
	defer srv.Close()
	control := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	for _, bad := range []string{"", "wrong", token[:63], strings.ToUpper(token)} {
		c := NewClient(control)
		c.Token = bad
		if _, err := c.State(ctx); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("token %q: got %v, want 401", bad, err)
		}
	}
	c := NewClient(control)
	c.Token = token
	st, err := c.State(ctx)
	if err != nil || st.Name != "a" {
		t.Fatalf("with the token: %+v, %v", st, err)
	}
}
