package handoff_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sockshift/sockshift/handoff/nstest"
	"golang.org/x/sys/unix"
)

// holdAt starts a hand-off from a to b in the background and returns once
// it waits at step; goOn lets it finish and returns its answer.
func holdAt(t *testing.T, servers map[string]*exServer, step string) (goOn func() string) {
	t.Helper()
	a := servers[exA]
	if got := a.do("hold " + step); got != "ok hold "+step {
		t.Fatal(got)
	}
	if got := a.do("handoff-bg " + exB); got != "at "+step {
		t.Fatalf("hand-off held at %s: %q", step, got)
	}
	return func() string {
		t.Helper()
		var done string
		for _, line := range []string{a.do("go"), a.line()} {
			if strings.HasPrefix(line, "done ") {
				done = strings.TrimPrefix(line, "done ")
			}
		}
		return done
	}
}

func echoLine(t *testing.T, c net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	if got, err := r.ReadString('\n'); err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// TestAcceptAfterTheQuiesceMoves: a client that connects after the
// service paused (the hand-off held just before the freeze), whose
// handshake the source's kernel completes, moves with the others: the
// target serves it from its first line, and nothing is left behind on
// the source. Without the Listener it was served by the source, off the
// pause, and cut off once the address left.
func TestAcceptAfterTheQuiesceMoves(t *testing.T) {
	hosts, servers := startExample(t, "eq")
	typing := startLineClient(dialFrom(t, hosts[0], exVIP+":7007"))
	goOn := holdAt(t, servers, "freeze")
	late := dialFrom(t, hosts[0], exVIP+":7007")
	io.WriteString(late, "hello\n") // waits in the socket, accepted by no one yet
	if got := goOn(); got != "ok moved 2 stayed 0" {
		t.Fatalf("hand-off: %q, want the typing client and the late one moved", got)
	}
	r := bufio.NewReader(late)
	late.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("the late client's first line: %q, %v", got, err)
	}
	echoLine(t, late, r, "x") // one word
	if got := servers[exB].do("handoff " + exA); got != "ok moved 2 stayed 0" {
		t.Fatalf("back: %q", got)
	}
	echoLine(t, late, r, "served again on a")
	t.Logf("typing client: %d lines echoed", typing.finish(t))
}

// TestSYNAfterTheReleaseConnectsToTheTarget: a client whose SYN reaches
// the source once its address is gone (the hand-off held at the dump)
// connects to the target, from the SYN the source caught and handed over:
// with no retransmission of its SYN (a second, a timeout, later).
func TestSYNAfterTheReleaseConnectsToTheTarget(t *testing.T) {
	hosts, servers := startExample(t, "es")
	// A client already talking to the address: its host's ARP entry names
	// the source, where the new SYN then goes. (With no entry, the SYN
	// waits for ARP, which the target's announce answers.)
	first := dialFrom(t, hosts[0], exVIP+":7007")
	echoLine(t, first, bufio.NewReader(first), "first")
	goOn := holdAt(t, servers, "dump")
	dialed := make(chan net.Conn, 1)
	errs := make(chan error, 1)
	go func() {
		var c net.Conn
		err := nstest.Do(hosts[0], func() (err error) {
			c, err = net.DialTimeout("tcp4", exVIP+":7007", 5*time.Second)
			return err
		})
		if err != nil {
			errs <- err
			return
		}
		dialed <- c
	}()
	time.Sleep(100 * time.Millisecond) // the SYN is caught meanwhile
	select {
	case c := <-dialed:
		c.Close()
		t.Fatal("connected while the address was on neither server")
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if got := goOn(); got != "ok moved 1 stayed 0" {
		t.Fatalf("hand-off: %q", got)
	}
	var c net.Conn
	select {
	case c = <-dialed:
	case err := <-errs:
		t.Fatal(err)
	}
	defer c.Close()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	rc.Control(func(fd uintptr) { info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if err != nil {
		t.Fatal(err)
	}
	if info.Total_retrans != 0 {
		t.Errorf("the client resent its SYN %d times: the caught SYN did not reach the target", info.Total_retrans)
	}
	echoLine(t, c, bufio.NewReader(c), "on the target")
	if got := servers[exB].do("handoff " + exA); got != "ok moved 2 stayed 0" {
		t.Fatalf("the new connection back to a: %q", got)
	}
}
