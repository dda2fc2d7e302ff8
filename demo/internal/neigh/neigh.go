package neigh

import (
	"net"
	"net/netip"
	"strings"
)

// Entry is one neighbour entry.
type Entry struct {
	Addr   netip.Addr
	Dev    string           // the interface's name
	MAC    net.HardwareAddr // nil when unresolved (INCOMPLETE, FAILED)
	Router bool
	State  int // NUD_* flags
}

// NUD_* states, as the kernel's neighbour table has them (linux/neighbour.h).
const (
	nudIncomplete = 0x01
	nudReachable  = 0x02
	nudStale      = 0x04
	nudDelay      = 0x08
	nudProbe      = 0x10
	nudFailed     = 0x20
	nudNoARP      = 0x40
	nudPermanent  = 0x80
)

var stateNames = []struct {
	flag int
	name string
}{
	{nudIncomplete, "INCOMPLETE"}, {nudReachable, "REACHABLE"}, {nudStale, "STALE"}, {nudDelay, "DELAY"},
	{nudProbe, "PROBE"}, {nudFailed, "FAILED"}, {nudNoARP, "NOARP"}, {nudPermanent, "PERMANENT"},
}

// String is the entry as `ip neigh show` prints it:
// "192.0.2.100 dev eth0 lladdr 52:54:00:12:34:56 REACHABLE".
func (e Entry) String() string { return e.format(true) }

// WithoutDev is the entry as `ip neigh show ADDR dev IF` prints it (the
// device named in the query is left out).
func (e Entry) WithoutDev() string { return e.format(false) }

func (e Entry) format(dev bool) string {
	f := []string{e.Addr.String()}
	if dev && e.Dev != "" {
		f = append(f, "dev", e.Dev)
	}
	if len(e.MAC) > 0 {
		f = append(f, "lladdr", e.MAC.String())
	}
	if e.Router {
		f = append(f, "router")
	}
	for _, s := range stateNames {
		if e.State&s.flag != 0 {
			f = append(f, s.name)
		}
	}
	return strings.Join(f, " ")
}
