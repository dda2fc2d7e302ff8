package node

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/sockshift/sockshift/demo/chat"
	"github.com/sockshift/sockshift/demo/count"
	"github.com/sockshift/sockshift/demo/echo"
	"github.com/sockshift/sockshift/handoff"
)

// services is every service a node can run, in the order it lists them.
// Adding a service is its package and one row here: the node gives it
// its flags (--NAME-vip, --NAME-port), listens for it, hands it off,
// reports its connections and ends them for a plain fail-over.
var services = []serviceDef{
	{name: echo.Name, port: 7, onVIP: true, start: func(*Main) running {
		s := &echo.Server{}
		return running{s, func() (out []Connection) {
			for _, c := range s.Connections() {
				out = append(out, Connection{Service: echo.Name, Client: c.Client, Local: c.Local, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
			}
			return out
		}}
	}},
	{name: chat.Name, port: 6667, addr: "192.0.2.101", start: func(m *Main) running {
		s := chat.New(&chat.Config{PingInterval: m.ChatPing, PingTimeout: 2 * m.ChatPing,
			MaxClients: m.ChatMaxClients, MaxMembers: m.ChatMaxMembers})
		return running{s, func() (out []Connection) {
			for _, c := range s.Connections() {
				out = append(out, Connection{Service: chat.Name, Client: c.Client, Local: c.Local, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
			}
			return out
		}}
	}},
	{name: count.Name, port: 7777, addr: "192.0.2.102", optIn: true, start: func(*Main) running {
		s := &count.Server{}
		return running{s, func() (out []Connection) {
			for _, c := range s.Connections() {
				out = append(out, Connection{Service: count.Name, Client: c.Client, Local: c.Local, BytesIn: c.BytesIn, BytesOut: c.BytesOut})
			}
			return out
		}}
	}},
}

// serviceDef is one row of services.
type serviceDef struct {
	name  string
	port  int    // its default port
	onVIP bool   // it lives on the VIP (--vip); otherwise on an address of its own
	addr  string // that address's default
	// optIn: it runs only where --services names it, so the default demo
	// (and the console's contract) keeps the services it had.
	optIn bool
	start func(*Main) running
}

// running is a service a node runs.
type running struct {
	svc interface {
		handoff.Service
		Serve(net.Listener) error
		Close() error
		CloseConnections() int // end every connection, keep serving
	}
	connections func() []Connection
}

// defaultServices names the services a node runs without --services.
func defaultServices() []string {
	var out []string
	for _, d := range services {
		if !d.optIn {
			out = append(out, d.name)
		}
	}
	return out
}

// serviceNames lists every service a node can run.
func serviceNames() []string {
	var out []string
	for _, d := range services {
		out = append(out, d.name)
	}
	return out
}

// parseServices checks a --services list against the table.
func parseServices(list string) ([]string, error) {
	var out []string
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if !slices.Contains(serviceNames(), name) {
			return nil, fmt.Errorf("node: --services: no service %q (there are %s)", name, strings.Join(serviceNames(), ", "))
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("node: --services: none named")
	}
	return out, nil
}

// ServiceAddrs lists the service addresses of every service a node can run
// (opt-in ones included) at their defaults, vip being the VIP: what a
// server may hold, to be found again on its interface after a crash.
func ServiceAddrs(vip netip.Addr) []netip.Addr {
	out := []netip.Addr{vip}
	for _, d := range services {
		if a := d.defaultAddr(vip); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func (d serviceDef) defaultAddr(vip netip.Addr) netip.Addr {
	if d.onVIP {
		return vip
	}
	return netip.MustParseAddr(d.addr)
}
