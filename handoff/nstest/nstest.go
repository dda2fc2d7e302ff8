package nstest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/sockshift/sockshift/handoff/nsexec"
)

// InCI reports whether the tests run under CI (CI=true), where nothing may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Privileged skips t (or fails it under CI) unless the test can create
// network namespaces: root on Linux with the ip command.
func Privileged(t testing.TB) {
	t.Helper()
	var why string
	switch {
	case runtime.GOOS != "linux":
		why = "needs Linux network namespaces"
	case os.Geteuid() != 0:
		why = "needs root (CAP_NET_ADMIN) for namespaces and TCP repair; run with sudo or CI=true as root"
	default:
		if _, err := exec.LookPath("ip"); err != nil {
			why = "needs the ip command (apt-get install iproute2)"
		}
	}
	if why == "" {
		return
	}
	if InCI() {
		t.Fatalf("CI=true but the test cannot run: %s", why)
	}
	t.Skip(why)
}

// NeedTool skips t (fails under CI) unless the named program is installed.
func NeedTool(t testing.TB, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err == nil {
		return
	}
	why := fmt.Sprintf("needs %s (apt-get install %s)", name, pkg)
	if InCI() {
		t.Fatalf("CI=true but the test cannot run: %s", why)
	}
	t.Skip(why)
}

// UniqueName returns prefix followed by random hex, short enough for an
// interface or namespace name (at most 15 bytes for prefixes up to 7).
func UniqueName(prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return prefix + hex.EncodeToString(b)
}

// Run runs a command and fails t with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NewNS creates a uniquely named network namespace with loopback up and
// removes it when the test ends, pass or fail.
func NewNS(t testing.TB, prefix string) string {
	t.Helper()
	Privileged(t)
	name := UniqueName(prefix)
	Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Exec runs a command inside namespace ns and fails t if it fails.
func Exec(t testing.TB, ns string, name string, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Do runs fn on an OS thread switched into namespace ns. Sockets that fn
// creates belong to ns for their whole life and may be used from any
// goroutine afterwards.
func Do(ns string, fn func() error) error { return nsexec.Do(ns, fn) }

// Segment builds one L2 segment: a bridge in a namespace of its own, and a
// host namespace per address (as 198.51.100.1/24), each on its own eth0,
// up. It returns the hosts' namespaces in the order of addrs; everything
// is removed when the test ends. (ip link add br0 type bridge; ip link add
// pN type veth peer name eth0 netns HOST; ip addr add ADDR dev eth0.)
func Segment(t testing.TB, prefix string, addrs ...string) []string {
	t.Helper()
	sw := NewNS(t, prefix+"s")
	Run(t, "ip", "-n", sw, "link", "add", "name", "br0", "type", "bridge")
	Run(t, "ip", "-n", sw, "link", "set", "dev", "br0", "up")
	hosts := make([]string, len(addrs))
	for i, addr := range addrs {
		hosts[i] = NewNS(t, prefix+fmt.Sprint(i))
		port := fmt.Sprintf("p%d", i)
		Run(t, "ip", "-n", sw, "link", "add", "name", port, "type", "veth", "peer", "name", "eth0", "netns", hosts[i])
		Run(t, "ip", "-n", sw, "link", "set", "dev", port, "master", "br0")
		Run(t, "ip", "-n", sw, "link", "set", "dev", port, "up")
		Run(t, "ip", "-n", hosts[i], "addr", "add", addr, "dev", "eth0")
		Run(t, "ip", "-n", hosts[i], "link", "set", "dev", "eth0", "up")
	}
	return hosts
}
