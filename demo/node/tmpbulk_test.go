package node_test

import (
	"net"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/sockshift/sockshift/internal/labtest"
)

func TestTmpBulk(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BULK_N"))
	if n == 0 {
		t.Skip()
	}
	env := labtest.Start(t, nil)
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				conns[i] = env.DialVIP(7)
			}
		}()
	}
	wg.Wait()
	for i, hop := range [][2]string{{"a", "b"}, {"b", "a"}, {"a", "b"}} {
		res := env.HandOff(hop[0], hop[1])
		t.Logf("hand-off %d: ok=%v %d conns, total %dus, %v %s", i, res.OK, res.Connections, res.TotalUS, res.Phases, res.Error)
	}
}
