package node_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
)

// TestFINBetweenFreezeAndDump pins a client's FIN between the freeze and
// the dump (a step-mode hand-off held just before the release, while the
// source still holds the address and its kernel still takes segments in):
// the socket is in CLOSE_WAIT when dumped. It must not abort the hand-off
// of the others; it moves as the connection it was, the FIN reaches the
// target with the caught frames, and the client gets its last echo and a
// clean end.
func TestFINBetweenFreezeAndDump(t *testing.T) {
	env := labtest.Start(t, nil)
	outside := startRawStream(env.DialVIP(7))
	closer := env.DialVIP(7).(*net.TCPConn)
	time.Sleep(50 * time.Millisecond)

	done := stepTo(t, env, "release") // frozen, the address still on a
	if _, err := io.WriteString(closer, "the last line\n"); err != nil {
		t.Fatal(err)
	}
	if err := closer.CloseWrite(); err != nil { // the FIN
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // a's kernel takes both in, frozen or not
	res := finishSteps(t, env, done)
	if !res.OK || res.Connections != 2 {
		t.Fatalf("a FIN between freeze and dump: want the hand-off of both connections, got %+v", res)
	}
	closer.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(closer) // the echo, then the server's own FIN
	if err != nil || string(got) != "the last line\n" {
		t.Fatalf("the closing client read %q, %v; want its last line, then the end", got, err)
	}
	if h := env.Holder(); h != "b" {
		t.Fatalf("VIP on %q, want b", h)
	}
	finishBoth(t, outside, startRawPingPong(env.DialVIP(7)))
}
