package handoff

import (
	"errors"
	"net"
	"net/netip"

	"github.com/sockshift/sockshift/handoff/catch"
)

// catchers are the catchers of one hand-off, one per service address that
// moves. A nil or empty set does nothing.
type catchers map[netip.Addr]catcher

// armCatchers arms a catcher for each address; on failure none stays armed.
func armCatchers(hn hostNet, addrs []netip.Addr) (catchers, error) {
	cs := catchers{}
	for _, a := range addrs {
		c, err := hn.Catch(a)
		if err != nil {
			cs.stop()
			return nil, err
		}
		cs[a] = c
	}
	return cs, nil
}

func (cs catchers) mark() {
	for _, c := range cs {
		c.Mark()
	}
}

// stop ends catching on every address, dropping what was kept.
func (cs catchers) stop() {
	for _, c := range cs {
		c.Stop()
	}
}

// stopOne ends catching on one address (its service stays here).
func (cs catchers) stopOne(a netip.Addr) {
	if c, ok := cs[a]; ok {
		c.Stop()
		delete(cs, a)
	}
}

// released notes, on every catcher, that the addresses are gone.
func (cs catchers) released() {
	for _, c := range cs {
		c.Released()
	}
}

// forward delivers what each caught to the target, of it only what owns
// lets through; see catch.Catcher.
func (cs catchers) forward(to net.HardwareAddr, needed func(ip []byte) bool, owns func(ip []byte, at catch.Stage) bool) (catch.Stats, error) {
	var sum catch.Stats
	var errs []error
	for _, c := range cs {
		c.DropEarly(needed)
		c.Only(owns)
		st, err := c.Forward(to)
		sum.Caught += st.Caught
		sum.Forwarded += st.Forwarded
		sum.Dropped += st.Dropped
		sum.Bytes += st.Bytes
		sum.Early += st.Early
		sum.Others += st.Others
		errs = append(errs, err)
	}
	return sum, errors.Join(errs...)
}
