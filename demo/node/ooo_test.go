package node_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/handoff/nstest"
)

var renegingCount = regexp.MustCompile(`TcpExtTCPSACKReneging\s+(\d+)`)

// reneging reads how often the namespace's TCP senders found data they
// had seen SACKed gone from the receiver.
func reneging(t *testing.T, ns string) int {
	t.Helper()
	m := renegingCount.FindStringSubmatch(nstest.Exec(t, ns, "nstat", "-asz", "TcpExtTCPSACKReneging"))
	if m == nil {
		t.Fatal("nstat shows no TcpExtTCPSACKReneging")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestOutOfOrderDataMoves freezes a connection while the source holds
// out-of-order data: one client segment is dropped on its way in (a
// firewall rule on the source matches its first bytes), so what the
// client sends after it waits past a hole, SACKed. Repair mode cannot dump
// it; the source must hand it to the target with the caught frames, or
// the client, having seen it SACKed, finds it gone (SACK reneging) and
// sends it again. The hole is filled by the client's retransmission,
// which reaches the target; every byte must come back in order, and no
// sender in the client's namespace may have met reneging.
func TestOutOfOrderDataMoves(t *testing.T) {
	nstest.NeedTool(t, "nft", "nftables")
	nstest.NeedTool(t, "nstat", "iproute2")
	env := labtest.Start(t, nil)
	c := env.DialVIP(7)
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.Write([]byte("warm-up\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	before := reneging(t, env.Lab.Client.Namespace)

	done := stepTo(t, env, "quiesce")

	// The catcher watches; the services still run. A segment starting with
	// marker never arrives at a (timestamps make its TCP header 32 bytes),
	// and the bytes after it arrive out of order.
	marker := []byte("HOLE-0123")
	aNS := env.Lab.Servers[0].Namespace
	nstest.Exec(t, aNS, "nft", "add", "table", "inet", "ooo")
	t.Cleanup(func() { exec.Command("ip", "netns", "exec", aNS, "nft", "delete", "table", "inet", "ooo").Run() })
	nstest.Exec(t, aNS, "nft", "add", "chain", "inet", "ooo", "in", "{ type filter hook prerouting priority -300; }")
	nstest.Exec(t, aNS, "nft", "add", "rule", "inet", "ooo", "in", "tcp", "dport", "7",
		"@th,256,64", "0x"+hex.EncodeToString(marker[:8]), "drop")
	msg := append([]byte(nil), marker...)
	for i := 0; len(msg) < 64<<10; i++ {
		msg = binary.BigEndian.AppendUint32(msg, uint32(i))
	}
	if _, err := c.Write(marker); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond) // its own segment
	if _, err := c.Write(msg[len(marker):]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // all of it reaches a, past the hole

	if res := finishSteps(t, env, done); !res.OK {
		t.Fatalf("hand-off: %s", res.Error)
	}
	nstest.Exec(t, aNS, "nft", "delete", "table", "inet", "ooo")

	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("the echo differs from what was sent")
	}
	if n := reneging(t, env.Lab.Client.Namespace) - before; n != 0 {
		t.Fatalf("the client met SACK reneging %d times: out-of-order data was lost in the hand-off", n)
	}
}
