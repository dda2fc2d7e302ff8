package bench

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/sockshift/sockshift/demo/internal/wait"
)

// stallWatch reports, once per stream, what the hosts see of a stream
// that owes bytes and has not moved for stallLimit/2: a stream that stalls
// in CI says why in the log instead of only timing out at the end.
func (b *bench) stallWatch(ctx context.Context, c net.Conn, verified func() uint64, owed func() bool, report func(string)) {
	last, since := verified(), time.Now()
	for wait.Sleep(ctx, 100*time.Millisecond) {
		if v := verified(); v != last || !owed() {
			last, since = v, time.Now()
			continue
		}
		if time.Since(since) < stallLimit/2 {
			continue
		}
		report(b.sockets(ctx, c))
		return
	}
}

// sockets is what the client and both servers see of the connection c:
// its sockets (ss), the TCP counters that are not zero, a few of its
// packets, and where packets for the addresses go (addresses, MACs,
// neighbours). The stall that IP_TRANSPARENT caused (repair.activate)
// showed as a server answering every ACK from the client with a
// duplicate: the client acknowledged past the server's snd_nxt.
func (b *bench) sockets(ctx context.Context, c net.Conn) string {
	la, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	port := strconv.Itoa(la.Port)
	var out strings.Builder
	run := func(d time.Duration, keep func(string) bool, name string, args ...string) {
		cctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		o, err := exec.CommandContext(cctx, name, args...).CombinedOutput()
		for _, l := range strings.Split(strings.TrimRight(string(o), "\n"), "\n") {
			if l != "" && !strings.Contains(l, "cgroup2 mount") && keep(l) {
				fmt.Fprintf(&out, "  %s\n", l)
			}
		}
		if err != nil && cctx.Err() == nil {
			fmt.Fprintf(&out, "  (%s %s: %v)\n", name, strings.Join(args, " "), err)
		}
	}
	all := func(string) bool { return true }
	nonzeroTCP := func(l string) bool {
		f := strings.Fields(l)
		return len(f) >= 2 && strings.HasPrefix(f[0], "Tcp") && f[1] != "0"
	}
	for _, h := range b.c.Lab.Hosts() {
		ns := h.Namespace
		fmt.Fprintf(&out, "%s:\n", ns)
		inNS := func(args ...string) []string { return append([]string{"netns", "exec", ns}, args...) }
		run(5*time.Second, all, "ip", inNS("ss", "-tnieom", "-a", "( sport = :"+port+" or dport = :"+port+" )")...)
		run(5*time.Second, nonzeroTCP, "ip", inNS("nstat", "-asz")...)
		// Line-buffered, so what it printed before the deadline is kept.
		run(3*time.Second, all, "ip", inNS("tcpdump", "-l", "-nni", "eth0", "-c", "20", "tcp port "+port)...)
		for _, args := range [][]string{{"-br", "addr", "show", "dev", "eth0"}, {"-br", "link", "show", "dev", "eth0"}, {"neigh", "show"}} {
			run(5*time.Second, all, "ip", append([]string{"-n", ns}, args...)...)
		}
	}
	return out.String()
}
