package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/cluster"
	"github.com/sockshift/sockshift/demo/internal/labtest"
)

// Three servers, every connection handed round a -> b -> c -> a three
// times with clients attached: an outside stream and a ping-pong client
// on echo, the project's verifying clients beside them. Every byte comes
// back in order; after each hop the addresses are on the target alone.
func TestChainThroughThreeServers(t *testing.T) {
	env := labtest.StartConfig(t, cluster.Config{Servers: 3})
	if got := env.Servers(); len(got) != 3 || got[2] != "c" {
		t.Fatalf("servers %v, want a, b, c", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait := runClients(ctx, env)
	outside := startRawStream(env.DialVIP(7))
	pingpong := startRawPingPong(env.DialVIP(7))
	time.Sleep(200 * time.Millisecond)

	chain := []string{"a", "b", "c"}
	for i := range 3 * len(chain) {
		from, to := chain[i%3], chain[(i+1)%3]
		res := env.HandOff(from, to)
		if !res.OK || res.Connections != 4 {
			t.Fatalf("hop %d %s->%s: ok %v, %d connections moved (want 4): %s", i, from, to, res.OK, res.Connections, res.Error)
		}
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		holders, err := env.Holders(hctx) // fails if two servers hold one address
		hcancel()
		if err != nil || holders["echo"] != to || holders["chat"] != to {
			t.Fatalf("after hop %d %s->%s the addresses are on %v (%v)", i, from, to, holders, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	got := outside.finish(t)
	rounds := pingpong.finish(t)
	cancel()
	for _, st := range wait(t) {
		if st.Bytes == 0 {
			t.Errorf("%s client carried no bytes", st.Mode)
		}
	}
	t.Logf("outside clients: %d bytes streamed round trip, %d ping-pong rounds, through %d hops", got, rounds, 3*len(chain))
}
