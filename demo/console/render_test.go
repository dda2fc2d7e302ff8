package console

import (
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sockshift/sockshift/demo/node"
	"github.com/sockshift/sockshift/handoff/wire"
)

// The VM lab's configs render for any number of servers: each node's
// lists every other as a peer, the console's every node, and the node and
// console programs read them so. (The VMs themselves boot two servers.)
func TestVMLabConfigsRenderForThreeServers(t *testing.T) {
	script, err := filepath.Abs("../../vagrant/provision/render-config.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	if _, err := wire.GenerateKeyFile(key); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "token")
	os.WriteFile(token, []byte("secret\n"), 0o600)
	render := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("bash", append([]string{script}, args...)...).Output()
		if err != nil {
			t.Fatalf("render-config.sh %v: %v", args, err)
		}
		p := filepath.Join(dir, "conf")
		os.WriteFile(p, out, 0o600)
		return p
	}
	addrs := map[string]string{"a": "192.168.56.11", "b": "192.168.56.12", "c": "192.168.56.13"}
	for _, role := range []string{"a", "b", "c"} {
		var peers string
		want := map[string]netip.Addr{}
		for _, p := range []string{"a", "b", "c"} {
			if p != role {
				peers += map[bool]string{true: "", false: ","}[peers == ""] + p + "=" + addrs[p]
				want[p] = netip.MustParseAddr(addrs[p])
			}
		}
		var m node.Main
		conf := render("node", role, addrs[role], peers, "192.168.56.100", "eth1", key, "false")
		if err := m.ParseFlags([]string{"--config", conf}); err != nil {
			t.Fatalf("node %s: %v", role, err)
		}
		if m.Name != role || !maps.Equal(m.Peers, want) || m.Control != addrs[role]+":7071" || m.Addrs["chat"] != netip.MustParseAddr("192.168.56.101") {
			t.Errorf("node %s parsed as %+v", role, m)
		}
	}
	var m Main
	conf := render("console", "0.0.0.0:8080", "a=192.168.56.11,b=192.168.56.12,c=192.168.56.13", "192.168.56.100", "eth1", key, token)
	if err := m.ParseFlags([]string{"--config", conf}); err != nil {
		t.Fatal(err)
	}
	want := []Node{{"a", "192.168.56.11:7071"}, {"b", "192.168.56.12:7071"}, {"c", "192.168.56.13:7071"}}
	if !slices.Equal(m.Nodes, want) || m.Token != "secret" || m.ControlToken == "" {
		t.Errorf("console parsed as %+v", m)
	}
	// The two-server form the VMs' provisioning uses renders as before.
	conf = render("console", "0.0.0.0:8080", "192.168.56.11", "192.168.56.12", "192.168.56.100", "eth1", key, token)
	if err := m.ParseFlags([]string{"--config", conf}); err != nil || !slices.Equal(m.Nodes, want[:2]) {
		t.Errorf("two-server console: %+v, %v", m.Nodes, err)
	}
	for _, bad := range [][]string{
		{"console", "x", "a", "1", "2", "3", "4"},                        // a node without an address
		{"node", "a", "1.2.3.4", "b", "1.2.3.5", "1.2.3.6", "eth1", key}, // 8 arguments, no list
		{"console", "x", "a=1,b=2", "1", "2", "3", "4", "5"},             // a list in the two-server form
		{"console", "x", "a=1,b=2", "1", "2", "3"},                       // too few
	} {
		if err := exec.Command("bash", append([]string{script}, bad...)...).Run(); err == nil {
			t.Errorf("render-config.sh %v: no error", bad)
		}
	}
	if _, err := parseNodes("a=h:1,b=h:2,c=h:3,d=h:4,e=h:5,f=h:6,g=h:7"); err == nil {
		t.Error("seven servers: no error")
	}
}
