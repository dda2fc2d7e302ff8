package handoff

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ErrNoService is returned for a hand-off of a service the node does not
// have.
var ErrNoService = errors.New("handoff: no such service")

// plan is what one hand-off moves: services (indexes into Config.Services)
// and their addresses.
type plan struct {
	services []int
	addrs    []netip.Addr
}

// plan chooses what a hand-off moves: the services named (every service
// whose address is here if none), with their addresses. Services on one
// address move together, so naming one of them alone is an error.
func (n *Node) plan(names []string) (plan, error) {
	var p plan
	all := n.ServiceNames()
	for _, name := range names {
		if !slices.Contains(all, name) {
			return p, fmt.Errorf("%w %q (this node has: %s)", ErrNoService, name, strings.Join(all, ", "))
		}
	}
	for i, svc := range n.cfg.Services {
		a := n.AddrOf(svc.Name())
		if len(names) > 0 && !slices.Contains(names, svc.Name()) {
			continue
		}
		held, err := n.Holds(a)
		if err != nil {
			return p, err
		}
		if !held {
			if len(names) > 0 {
				return p, fmt.Errorf("service %s: its address %v is not on this node (%s)", svc.Name(), a, n.cfg.Name)
			}
			continue
		}
		p.services = append(p.services, i)
		if !slices.Contains(p.addrs, a) {
			p.addrs = append(p.addrs, a)
		}
	}
	for _, svc := range n.cfg.Services {
		a := n.AddrOf(svc.Name())
		if slices.Contains(p.addrs, a) && !slices.ContainsFunc(p.services, func(i int) bool { return n.cfg.Services[i] == svc }) {
			return p, fmt.Errorf("service %s shares the address %v with what moves: services on one address move together; name them all", svc.Name(), a)
		}
	}
	if len(p.services) == 0 {
		return p, fmt.Errorf("node %s holds none of the service addresses (%v): nothing to hand off", n.cfg.Name, n.Addrs())
	}
	return p, nil
}
