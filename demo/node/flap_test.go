package node_test

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/client"
	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/demo/lab"
)

// TestHandOffAfterInterfaceFlap takes the target's interface down and up
// again (a cable pulled and plugged back), then hands off to it: the
// target's packet socket kept the error of the downed link, and the
// announce must go out all the same (a fresh socket), or the client keeps
// sending to the source and waits for a timeout. The ping client sees no
// retransmission timeout, and the client's neighbour entry names the
// target.
func TestHandOffAfterInterfaceFlap(t *testing.T) {
	env := labtest.Start(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var st client.Stats
	var cerr error
	wg.Go(func() {
		st, cerr = client.Run(ctx, client.Config{Mode: client.Ping, Interval: -1,
			Addr: net.JoinHostPort(lab.VIP.String(), "7"), Dial: env.Dialer()})
	})
	time.Sleep(200 * time.Millisecond)

	b, _ := env.Host("b")
	for _, state := range []string{"down", "up"} {
		if out, err := exec.Command("ip", "-n", b.Namespace, "link", "set", b.Interface, state).CombinedOutput(); err != nil {
			t.Fatalf("ip link set %s: %v: %s", state, err, out)
		}
	}
	// Wait until the link carries frames again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := exec.Command("ip", "-n", b.Namespace, "-br", "link", "show", b.Interface).Output()
		if strings.Contains(string(out), " UP ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's link is not up again: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, hop := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "b"}} {
		res := env.HandOff(hop[0], hop[1])
		if !res.OK {
			t.Fatalf("hand-off %d %s->%s after b's link flapped: %s", i, hop[0], hop[1], res.Error)
		}
		if hop[1] == "b" {
			cl := env.Lab.Client
			out, _ := exec.Command("ip", "-n", cl.Namespace, "neigh", "show", lab.VIP.String()).Output()
			if !strings.Contains(string(out), b.MAC.String()) {
				t.Errorf("after hand-off %d to b, the client's entry for the VIP is %q, want b's MAC %s", i, out, b.MAC)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	if cerr != nil {
		t.Fatalf("ping client: %v", cerr)
	}
	t.Logf("ping: %d round trips, worst gap %v, %d RTOs", st.Pings, time.Duration(st.WorstGapUS)*time.Microsecond, st.RTOs)
	if st.RTOs > 0 {
		t.Errorf("the ping client waited for %d retransmission timeouts: the announce after the flap did not reach it", st.RTOs)
	}
}
