package appliance

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/handoff/nstest"
)

// The guides are run as written: every command in a ```sh block of the
// README and of docs/classroom.md is either run here, in a one-host lab
// that `scripts/demo` (the README's own command) brings up, or listed in
// notRunHere with the reason. A command added to or changed in the docs
// and not known here fails the test, so the docs cannot drift from what
// works.
//
// What is changed before a command runs, as the guides tell a reader to:
// `sudo ` is dropped (the test is root); the lab's prefix and the
// console's address are this test's (classroom.md: "Another prefix or
// port"), so `sockshift handoff` is given `--lab-prefix` and must find the
// console by itself; files under /tmp go to the test's own directory; the
// classroom's placeholders VIP, CHATVIP, IF and `sockshift` are the
// one-host lab's (its table: `bin/sockshift`, for `sudo` keeps no PATH, so
// neither does this test), and a command "on the client" or "on server A"
// runs in that namespace (`sudo ip netns exec ss-client` in front, as its
// table says). Commands that run until stopped (nc, watch, tail -f,
// tcpdump, a client) run for a few seconds, around a hand-off where the
// guide says to hand off.
//
// What a command shows is checked too, where the guide says what it shows
// (the sequence numbers equal on both servers, the ARP entry changing,
// the frozen socket still acknowledging until the release and the
// retransmits growing after it, the chat line arriving whole, ...): the
// guide cannot drift from what the lab does.
var docs = []string{"../../README.md", "../../docs/classroom.md"}

// notRunHere are the commands of the guides this test does not run.
var notRunHere = map[string]string{
	"scripts/test":             "the test suite itself (CI runs it)",
	"cd vagrant && vagrant up": "the VM lab: needs VMs; scripts/ci-vagrant checks it without (vagrant validate)",
	"sudo bin/sockshift bench --handoffs 200 --bulk 1,100,1000,2000,10000 --svg docs/bench.svg": "minutes of benchmark; scripts/test runs the same command with --quick",
	"sudo apt-get install mmdebstrap qemu-utils fdisk":                                          "installs packages (.ci/run installs them)",
	"sudo vagrant/box/build": "the VM lab's box: minutes of mmdebstrap; scripts/vm-lab-check builds it",
	"vagrant box add --name debian/bookworm64 /var/tmp/sockshift-vm/box/bookworm64-libvirt.box": "the VM lab; scripts/vm-lab-check adds the box it built",
	"cd vagrant && vagrant up --provider=libvirt":                                               "the VM lab; scripts/vm-lab-check boots it",
}

// inlineNotRun are the commands written inline in the guides' prose that
// this test does not run, and why: most belong to the VM lab, and some are
// forms ("sudo CMD") rather than commands.
var inlineNotRun = map[string]string{
	"sudo scripts/leaky-host scripts/test":                                    "the whole suite again; TestUpSealsTheLabFromTheHost, TestBreakIt/skip-announce-on-leaky-host and TestSkipAnnounceStallsOnALeakyHost run the same wrapper",
	"sudo apt-get install iproute2":                                           "installs a package (.ci/run installs what the tests need)",
	"sudo scripts/demo":                                                       "run above, from the README's block",
	"scripts/demo --listen 0.0.0.0:8080 --token SECRET":                       "would listen on every address of a shared machine; TestToken (web) checks the token rule",
	"ip -n ss-a addr del 192.0.2.100/32 dev eth0":                             "what the Release step does; TestConsoleInChromium checks the step's commands and effect",
	"scripts/demo --no-client":                                                "a second demo; the chat commands above run beside the demo's own clients",
	"vagrant/provision/host-prepare.sh && vagrant rsync && vagrant provision": "the VM lab",
	"vagrant ssh client":                                                      "the VM lab",
	"sockshift client --addr 192.168.56.100:7 --mode ping --interval 100ms":   "the VM lab (the classroom's form of it runs above)",
	"nc 192.168.56.100 7":                                                     "the VM lab (nc VIP 7 runs above)",
	"sudo tcpdump -ni eth1 'arp or host 192.168.56.100'":                      "the VM lab (the classroom's tcpdump runs above)",
	"vagrant provision":                                                       "the VM lab",
	"vagrant validate --ignore-provider":                                      "the VM lab's checks (scripts/ci-vagrant runs it)",
	"sudo scripts/rcvbuf-probe":                                               "minutes of full-speed streaming",
	"cd vagrant && vagrant up":                                                "the VM lab",
	"sudo ip netns exec ss-X CMD":                                             "a form: the classroom's commands run above in this form",
	"vagrant ssh X -c 'sudo CMD'":                                             "a form for the VM lab",
	"vagrant ssh X":                                                           "a form for the VM lab",
	"sudo CMD":                                                                "a form",
	"sudo ip netns exec ss-client":                                            "a prefix: the classroom's commands run above with it",
	"ip netns exec":                                                           "a prefix",
	"sockshift handoff --console 127.0.0.1:8080 --token TOKEN":                "the VM lab's console, which wants a token",
	"irssi -c CHATVIP -p 6667 -n linus":                                       "the README's irssi line runs above (the same client, nick and server)",
	"ping -c1 192.168.56.10":                                                  "the VM lab",
	"sudo systemctl kill -s KILL sockshift-node":                              "the VM lab",
	"systemctl status sockshift-node":                                         "the VM lab",
	"systemctl cat sockshift-node":                                            "the VM lab",
	"grep Cap /proc/$(pgrep -f 'sockshift node')/status":                      "the VM lab (in the one-host lab the servers run as root)",
	"curl http://192.168.56.11:7071/state":                                    "the VM lab",
	"sudo bin/sockshift lab down":                                             "the `lab up|status|down` line runs it, with a prefix of the test's own",
	"vagrant ssh server-b -c 'sudo systemctl restart sockshift-node'":         "the VM lab",
	"rm vagrant/.lab/key vagrant/.lab/console-token":                          "the VM lab's secrets",
	"vagrant destroy -f && vagrant up":                                        "the VM lab",
	"vagrant up":                                                              "the VM lab",
	"vagrant rsync":                                                           "the VM lab",
	"sockshift bench --soak N":                                                "a form; TestShortSoak runs a soak",
	"vagrant up --provider=libvirt":                                           "the VM lab; scripts/vm-lab-check boots it",
	"sudo vagrant/box/build":                                                  "the VM lab's box: minutes of mmdebstrap; scripts/vm-lab-check builds it",
	"vagrant box add":                                                         "a form for the VM lab's box",
	"vagrant destroy -f":                                                      "the VM lab; scripts/vm-lab-check runs it and checks what is left",
	"sudo SOCKSHIFT_VM_LAB=1 scripts/test":                                    "the test suite itself, with the VM lab (CI runs it)",
	"systemctl kill -s KILL":                                                  "the VM lab; scripts/vm-lab-check runs it on a node",
	"sudo scripts/vm-lab-check":                                               "boots three VMs (about 12 minutes); scripts/test runs it under CI",
	"sockshift client --addr VIP:7 --mode ping":                               "a form; its one-host spelling, the next command, runs here",
	"sudo scripts/demo --lab-prefix P --listen ADDR":                          "a form: this test starts the demo so, with a prefix and an address of its own",
	"scripts/demo --break-hold 20s":                                           "a second demo; the break-it exercise runs with the default hold and checks it",
	"scripts/demo --servers 3":                                                "a second demo; TestDemoWithThreeServers runs the demo with three servers",
	"sockshift handoff --to c":                                                "needs three servers; TestDemoWithThreeServers runs it",
}

// inlineCommandRe finds commands written inline in prose: a code span that
// starts with a command the guides use and has arguments.
var inlineCommandRe = regexp.MustCompile("`((?:sudo|ip|nc|curl|bin/sockshift|scripts/[a-z-]+|sockshift (?:handoff|client|bench|lab)|vagrant(?:/provision/[a-z-]+\\.sh)?|systemctl|tcpdump|irssi|ping|grep|rm|cd) [^`]*)`")

// readInlineCommands lists the commands written inline in the guides'
// prose (outside code blocks), spaces normalized.
func readInlineCommands(t *testing.T) []docCommand {
	t.Helper()
	var out []docCommand
	for _, path := range docs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		prose := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(b), "")
		prose = regexp.MustCompile(`\s*\n\s*`).ReplaceAllString(prose, " ")
		for _, m := range inlineCommandRe.FindAllStringSubmatch(prose, -1) {
			text := strings.Join(strings.Fields(m[1]), " ")
			if f := strings.Fields(text); f[0] == "sockshift" && len(f) < 3 {
				continue // a name ("sockshift client"), not a command
			}
			out = append(out, docCommand{file: filepath.Base(path), text: text})
		}
	}
	return out
}

// docCommand is one command of a guide, with its context.
type docCommand struct {
	file  string
	line  int
	text  string   // as written, without a trailing comment
	where []string // roles it runs on ("client", "a", "b"), from a "# on ..." line
	typed []string // a ```text block right after it: what to type into it
}

func readDocCommands(t *testing.T) []docCommand {
	t.Helper()
	var out []docCommand
	for _, path := range docs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		lang, where := "", []string(nil)
		for i, l := range lines {
			switch {
			case strings.HasPrefix(l, "```") && lang == "":
				lang, where = strings.TrimPrefix(l, "```"), nil
				if lang == "" {
					lang = "plain"
				}
				continue
			case strings.HasPrefix(l, "```"):
				lang = ""
				continue
			}
			switch lang {
			case "sh":
				l = strings.TrimSpace(l)
				if strings.HasPrefix(l, "#") {
					switch {
					case strings.Contains(l, "on server A and on server B"):
						where = []string{"a", "b"}
					case strings.Contains(l, "on the client"):
						where = []string{"client"}
					}
					continue
				}
				if i := strings.Index(l, "  #"); i >= 0 {
					l = strings.TrimSpace(l[:i])
				}
				if l != "" {
					out = append(out, docCommand{file: filepath.Base(path), line: i + 1, text: l, where: where})
				}
			case "text":
				if n := len(out); n > 0 && strings.TrimSpace(l) != "" {
					out[n-1].typed = append(out[n-1].typed, l)
				}
			}
		}
	}
	return out
}

// docLab is the one-host lab the guides' commands run in.
type docLab struct {
	t       *testing.T
	root    string // the repository
	prefix  string
	console string // host:port
	tmp     string
}

// shell is a command line as this lab runs it (see the package comment).
func (l *docLab) shell(c docCommand, role string) string {
	s := strings.TrimPrefix(c.text, "sudo ")
	s = regexp.MustCompile(`\bss-(client|a|b|sw)\b`).ReplaceAllString(s, l.prefix+"-$1")
	s = strings.ReplaceAll(s, "127.0.0.1:8080", l.console)
	s = strings.ReplaceAll(s, "/tmp/", l.tmp+"/")
	if c.file == "classroom.md" {
		s = regexp.MustCompile(`\bCHATVIP\b`).ReplaceAllString(s, "192.0.2.101")
		s = regexp.MustCompile(`\bVIP\b`).ReplaceAllString(s, "192.0.2.100")
		s = regexp.MustCompile(`\bIF\b`).ReplaceAllString(s, "eth0")
		s = regexp.MustCompile(`^sockshift `).ReplaceAllString(s, "bin/sockshift ")
	}
	if strings.HasPrefix(s, "bin/sockshift handoff") {
		s = strings.Replace(s, "bin/sockshift handoff", "bin/sockshift handoff --lab-prefix "+l.prefix, 1)
	}
	if role != "" {
		s = "ip netns exec " + l.prefix + "-" + role + " " + s
	}
	return s
}

// run runs a command line to its end.
func (l *docLab) run(what, line string) string {
	l.t.Helper()
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = l.root
	cmd.Env = l.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Errorf("%s: `%s`: %v\n%s", what, line, err, out)
	}
	return string(out)
}

// env is the test's environment: bin/ is not on PATH, as it is not for
// a reader who runs `sudo ...`.
func (l *docLab) env() []string { return os.Environ() }

// proc is a command that runs until stopped.
type proc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   labtest.Output
	ended chan struct{}
}

func (l *docLab) start(line string) *proc {
	l.t.Helper()
	p := &proc{cmd: exec.Command("sh", "-c", line), ended: make(chan struct{})}
	p.cmd.Dir, p.cmd.Env = l.root, l.env()
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var err error
	if p.in, err = p.cmd.StdinPipe(); err != nil {
		l.t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		l.t.Fatalf("`%s`: %v", line, err)
	}
	go func() { p.cmd.Wait(); close(p.ended) }()
	l.t.Cleanup(func() { p.stop(syscall.SIGKILL) })
	return p
}

// stop signals the command's process group and waits for it to end.
func (p *proc) stop(sig syscall.Signal) {
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.ended:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.ended
	}
}

// awaitAfter waits until the output past mark has want.
func (p *proc) awaitAfter(t *testing.T, what string, mark int, want string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(p.out.String()[mark:], want); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in\n%s", what, want, p.out.String()[mark:])
		}
	}
}

// await waits until the output has want.
func (p *proc) await(t *testing.T, what, want string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(p.out.String(), want); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q in\n%s", what, want, p.out.String())
		}
	}
}

func (l *docLab) handOff() {
	l.t.Helper()
	resp, err := http.Post("http://"+l.console+"/api/handoff", "application/json", strings.NewReader("{}"))
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		l.t.Fatalf("hand-off: %s %s", resp.Status, b)
	}
}

func (l *docLab) holder() string {
	l.t.Helper()
	return l.holders()["echo"]
}

// holders says which server holds each service's address.
func (l *docLab) holders() map[string]string {
	l.t.Helper()
	resp, err := http.Get("http://" + l.console + "/api/state")
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Services []struct{ Name, Holder string }
	}
	json.NewDecoder(resp.Body).Decode(&st)
	out := map[string]string{}
	for _, s := range st.Services {
		out[s.Name] = s.Holder
	}
	return out
}

func TestDocsCommandsRunAsWritten(t *testing.T) {
	nstest.Privileged(t)
	for _, tool := range [][2]string{{"nc", "netcat-openbsd"}, {"tcpdump", "tcpdump"}, {"ii", "ii"}, {"curl", "curl"}, {"watch", "procps"}, {"irssi", "irssi"}, {"script", "bsdutils"}} {
		nstest.NeedTool(t, tool[0], tool[1])
	}
	cmds := readDocCommands(t)

	// The guides' nicks must not be the demo's bots'.
	for _, path := range docs {
		b, _ := os.ReadFile(path)
		for _, m := range regexp.MustCompile(`(?:NICK|USER|-n) ([A-Za-z][\w-]*)`).FindAllStringSubmatch(string(b), -1) {
			if slices.Contains(botNicks[:], m[1]) {
				t.Errorf("%s uses the nick %q, which a demo chat bot holds: `%s`", path, m[1], m[0])
			}
		}
	}

	root, _ := filepath.Abs("../../")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	console := ln.Addr().String()
	ln.Close()
	l := &docLab{t: t, root: root, prefix: labtest.Prefix(), console: console, tmp: t.TempDir()}

	ran := map[int]bool{} // index in cmds
	find := func(prefix string) (int, docCommand) {
		t.Helper()
		for i, c := range cmds {
			if strings.HasPrefix(c.text, prefix) && !ran[i] {
				ran[i] = true
				return i, c
			}
		}
		t.Fatalf("no command starting %q in the guides (were they changed? run the new one here)", prefix)
		return 0, docCommand{}
	}
	for i, c := range cmds {
		if _, ok := notRunHere[c.text]; ok {
			ran[i] = true
		}
	}
	// inline finds a command written inline in the guides' prose, for an
	// exercise that runs it; the inline commands' own subtest then skips it.
	inlineRan := map[string]bool{}
	inlineCmds := readInlineCommands(t)
	inline := func(text string) docCommand {
		t.Helper()
		for _, c := range inlineCmds {
			if c.text == text {
				inlineRan[text] = true
				return c
			}
		}
		t.Fatalf("no inline command `%s` in the guides (were they changed? run the new one here)", text)
		return docCommand{}
	}

	// sudo scripts/demo, with the flags the README gives.
	_, c := find("sudo scripts/demo")
	demo := l.start(l.shell(c, "") + " --lab-prefix " + l.prefix + " --listen " + l.console)
	t.Cleanup(func() {
		demo.stop(syscall.SIGINT)
		if left := leftoversOf(l.prefix); len(left) > 0 {
			t.Errorf("scripts/demo left %v", left)
		}
	})
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get("http://" + l.console + "/api/state"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-demo.ended:
			t.Fatalf("scripts/demo ended:\n%s", demo.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("scripts/demo did not come up:\n%s", demo.out.String())
		}
	}
	time.Sleep(2 * time.Second) // the demo's clients and chat bots connect

	t.Run("README: try it by hand", func(t *testing.T) {
		l.t = t
		_, c := find("sudo ip netns exec ss-client nc 192.0.2.100 7")
		nc := l.start(l.shell(c, ""))
		fmt.Fprintln(nc.in, "a line before")
		nc.await(t, "nc to echo", "a line before\n")
		before := l.holder()
		_, c = find("bin/sockshift handoff")
		l.run("hand off", l.shell(c, ""))
		if after := l.holder(); after == before {
			t.Errorf("`%s` left the VIP on %s", c.text, after)
		}
		fmt.Fprintln(nc.in, "a line after")
		nc.await(t, "nc after the hand-off", "a line after\n")
		_, c = find("curl -s http://127.0.0.1:8080/api/state")
		if out := l.run("state", l.shell(c, "")); !strings.Contains(out, `"holder":"`) {
			t.Errorf("`%s` gave %s", c.text, out)
		}
		for _, prefix := range []string{"sudo ip netns exec ss-client bin/sockshift client --mode stream", "sudo ip netns exec ss-client bin/sockshift client --mode ping"} {
			_, c := find(prefix)
			l.clientAcrossHandOff(c, "")
		}
		_, c = find("sudo bin/sockshift lab up|status|down [--prefix P]")
		other := labtest.Prefix()
		for _, verb := range []string{"up", "status", "down"} {
			l.run(c.text, strings.Replace(l.shell(c, ""), "up|status|down [--prefix P]", verb+" --prefix "+other, 1))
		}
	})

	t.Run("README: attach a chat client", func(t *testing.T) {
		l.t = t
		// ii first: it watches #lab for the others' lines.
		_, c := find("sudo ip netns exec ss-client ii ")
		ii := l.start(strings.TrimSuffix(l.shell(c, ""), " &"))
		in := filepath.Join(l.tmp, "irc/192.0.2.101/in")
		waitFile(t, in)
		_, c = find("echo '/j #lab'")
		l.run(c.text, l.shell(c, ""))
		waitFile(t, filepath.Join(l.tmp, "irc/192.0.2.101/#lab/in"))
		_, c = find("echo 'hello'")
		l.run(c.text, l.shell(c, ""))
		_, c = find("tail -f '/tmp/irc/192.0.2.101/#lab/out'")
		tail := l.start(l.shell(c, ""))
		tail.await(t, "ii's own line in #lab", "<alan> hello")
		_ = ii

		_, c = find("sudo ip netns exec ss-client nc 192.0.2.101 6667")
		nc := l.start(l.shell(c, ""))
		for _, line := range c.typed {
			fmt.Fprintln(nc.in, line)
		}
		nc.await(t, "nc registered", " 001 ")
		tail.await(t, "nc's line in #lab", "hello from nc")
		if strings.Contains(nc.out.String(), " 433 ") {
			t.Errorf("the README's nick is in use:\n%s", nc.out.String())
		}
		// Half a line, sent as Ctrl-D sends it (no newline), a hand-off,
		// then the rest: it arrives once, whole.
		fmt.Fprint(nc.in, "PRIVMSG #lab :half a line")
		time.Sleep(300 * time.Millisecond)
		l.handOff()
		fmt.Fprintln(nc.in, " and its end")
		tail.await(t, "the finished line", "half a line and its end")
		time.Sleep(500 * time.Millisecond)
		if n := strings.Count(tail.out.String(), "half a line"); n != 1 {
			t.Errorf("the half line arrived %d times:\n%s", n, tail.out.String())
		}

		// irssi, in a terminal of its own (script gives it one).
		_, c = find("sudo ip netns exec ss-client irssi ")
		home := filepath.Join(l.tmp, "irssi")
		os.MkdirAll(home, 0o700)
		irssi := l.start("TERM=xterm script -qfec " + shellQuote(l.shell(c, "")+" --home="+home) + " /dev/null")
		irssi.await(t, "irssi registered", "Welcome to the sockshift chat")
		fmt.Fprint(irssi.in, "/join #lab\r")
		irssi.await(t, "irssi in #lab", "#lab")
		time.Sleep(500 * time.Millisecond)
		fmt.Fprint(irssi.in, "hi from irssi\r")
		tail.await(t, "irssi's line in #lab", "<linus> hi from irssi")
		fmt.Fprint(irssi.in, "/quit\r")
	})

	// The classroom's exercises, step by step, each checked for what the
	// guide says a student sees.
	var neighCmd, ssCmd docCommand
	// A chat client of exercise 3 that stays silent, for the server's
	// PING the guide says to answer (checked in exercise 5, 30 s on).
	var pinged *proc
	var pingedSince time.Time
	top := t
	t.Run("classroom: what to watch", func(t *testing.T) {
		l.t = t
		_, neighCmd = find("watch -n 0.2 ip neigh show VIP")
		for _, r := range neighCmd.where {
			if out := l.run(neighCmd.text, l.watchOnce(neighCmd, r)); !strings.Contains(out, "192.0.2.100") || !strings.Contains(out, "lladdr") {
				t.Errorf("`%s` on %s: %q", neighCmd.text, r, out)
			}
		}
		_, ssCmd = find("watch -n 0.5 \"ss -tnie")
		h := l.holder()
		for _, r := range ssCmd.where {
			out := l.run(ssCmd.text, l.watchOnce(ssCmd, r))
			if r != h {
				continue
			}
			if !strings.Contains(out, "192.0.2.100:7 ") {
				t.Errorf("`%s` on the holder %s lists no echo connection:\n%s", ssCmd.text, r, out)
			}
			// What the guide says `ss -tnie` shows of a busy connection.
			for _, field := range []string{"ino:", "wscale:", "mss:1448", "rtt:", "rto:", "bytes_sent:", "bytes_acked:", "bytes_received:"} {
				if !strings.Contains(out, field) {
					t.Errorf("the guide says `%s` shows %s; on the holder it does not:\n%s", ssCmd.text, field, out)
				}
			}
			if regexp.MustCompile(`\b(seq|snd_nxt|rcv_nxt)\b`).MatchString(out) {
				t.Errorf("the guide says ss shows no sequence numbers, yet:\n%s", out)
			}
		}
	})

	t.Run("classroom 1 and 2: a connection that does not notice, the gratuitous ARP", func(t *testing.T) {
		l.t = t
		_, live := find("sudo tcpdump -ni IF -e -S")
		dump := l.start(l.shell(live, live.where[0]))
		_, pc := find("sockshift client --addr VIP:7 --mode ping --interval 100ms")
		ping := l.start(l.shell(pc, pc.where[0]))
		ping.await(t, pc.text, " 0 errors")
		c := inline("nc -p 40000 VIP 7")
		nc := l.start(l.shell(c, "client"))
		fmt.Fprintln(nc.in, "line one")
		nc.await(t, c.text, "line one\n")
		time.Sleep(time.Second) // tcpdump prints what it saw so far
		from := l.holder()
		to := otherRole(from)
		mac := l.state().macs()
		onA := ssEntry(l.run(ssCmd.text, l.watchOnce(ssCmd, from)), "192.0.2.10:40000")
		if onA == "" {
			t.Fatalf("`%s` on %s lists no nc connection from port 40000", ssCmd.text, from)
		}

		c = inline("bin/sockshift handoff")
		out := strings.TrimSpace(l.run(c.text, l.shell(c, "")))
		if !regexp.MustCompile(`^[AB] → [AB]: \d+ connections moved`).MatchString(out) || strings.Contains(out, "\n") {
			t.Errorf("`%s` printed, where the guide says one line:\n%s", c.text, out)
		}
		if h := l.holder(); h != to {
			t.Fatalf("`%s` left the VIP on %s", c.text, h)
		}
		// B's socket is another, with no round trip measured yet and its
		// counters at zero; a line brings them.
		onB := ssEntry(l.run(ssCmd.text, l.watchOnce(ssCmd, to)), "192.0.2.10:40000")
		if onB == "" || field(onB, "ino:") == field(onA, "ino:") {
			t.Errorf("after the hand-off, nc's socket on %s is no other socket:\n%s\n%s", to, onA, onB)
		}
		for _, f := range []string{"wscale:", "mss:"} {
			if field(onA, f) != field(onB, f) {
				t.Errorf("%s differs: %q on %s, %q on %s", f, field(onA, f), from, field(onB, f), to)
			}
		}
		for _, f := range []string{"rtt:", "bytes_sent:", "bytes_acked:", "bytes_received:"} {
			if strings.Contains(onB, " "+f) {
				t.Errorf("the guide says that right after the hand-off `ss -tnie` on B shows no %s; it does:\n%s", f, onB)
			}
		}
		fmt.Fprintln(nc.in, "line two")
		nc.await(t, "nc after the hand-off", "line two\n")
		later := ssEntry(l.run(ssCmd.text, l.watchOnce(ssCmd, to)), "192.0.2.10:40000")
		for _, f := range []string{"rtt:", "bytes_acked:", "bytes_received:"} {
			if !strings.Contains(later, " "+f) {
				t.Errorf("the guide says a typed line brings %s back on B; it did not:\n%s", f, later)
			}
		}

		// What moved: the sequence numbers (and the rest of the connection)
		// the same on both; the MSS the client's, ss's mss: 12 less.
		rep := l.latest()
		if len(rep.Moved) == 0 {
			t.Fatalf("the report has no What moved: %+v", rep)
		}
		for _, mv := range rep.Moved {
			for _, k := range []string{"send_seq", "recv_seq", "snd_wscale", "rcv_wscale", "mss", "sack", "timestamps"} {
				if fmt.Sprint(mv.Before[k]) != fmt.Sprint(mv.After[k]) {
					t.Errorf("What moved, %s: %s is %v on A, %v on B", mv.Client, k, mv.Before[k], mv.After[k])
				}
			}
			if mss := fmt.Sprint(mv.Before["mss"]); mss != "1460" {
				t.Errorf("What moved shows MSS %s, the guide 1,460", mss)
			}
		}
		// The client's ARP entry names the other server.
		if !strings.Contains(rep.ARPBefore, mac[from]) || !strings.Contains(rep.ARPAfter, mac[to]) {
			t.Errorf("the client's ARP entry: %q before, %q after; want %s then %s", rep.ARPBefore, rep.ARPAfter, mac[from], mac[to])
		}
		if out := l.run(neighCmd.text, l.watchOnce(neighCmd, "client")); !strings.Contains(out, mac[to]) {
			t.Errorf("`%s` after the hand-off names no %s: %q", neighCmd.text, mac[to], out)
		}
		if rep.Fate == nil || rep.Fate.ToSource != 0 {
			t.Errorf("the guide says fate.to_source is 0 after a hand-off: %+v", rep.Fate)
		}

		ping.stop(syscall.SIGINT)
		if lines := strings.Split(strings.TrimSpace(ping.out.String()), "\n"); !strings.Contains(lines[len(lines)-1], " 0 errors") {
			t.Errorf("`%s` across the hand-off:\n%s", pc.text, ping.out.String())
		}
		// tcpdump prints the second line's frames when it gets to them: on
		// a loaded machine that can take longer than the echo.
		bothLines := regexp.MustCompile(`192\.0\.2\.100\.7 > 192\.0\.2\.10\.40000: Flags \[P\.\]`)
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && len(bothLines.FindAllString(dump.out.String(), -1)) < 2; {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		dump.stop(syscall.SIGINT)
		seen := dump.out.String()
		// One named frame: the request for the VIP's own address, from
		// the target's MAC to everyone.
		garp := regexp.MustCompile(`(?m)^\S+ (\S+) > ff:ff:ff:ff:ff:ff, ethertype ARP .*Request who-has 192\.0\.2\.100 tell 192\.0\.2\.100,`).FindAllStringSubmatch(seen, -1)
		if len(garp) != 1 || garp[0][1] != mac[to] {
			t.Errorf("`%s`: want one `Request who-has 192.0.2.100 tell 192.0.2.100` from %s (the target) to ff:ff:ff:ff:ff:ff, got %v in\n%s", live.text, mac[to], garp, seen)
		}
		// seq and ack go on across the hand-off: the two lines back to
		// back, and so their echoes.
		sent := regexp.MustCompile(`192\.0\.2\.10\.40000 > 192\.0\.2\.100\.7: Flags \[P\.\], seq (\d+):(\d+), ack (\d+)`).FindAllStringSubmatch(seen, -1)
		echoed := regexp.MustCompile(`192\.0\.2\.100\.7 > 192\.0\.2\.10\.40000: Flags \[P\.\], seq (\d+):(\d+), ack (\d+)`).FindAllStringSubmatch(seen, -1)
		if len(sent) != 2 || len(echoed) != 2 || sent[1][1] != sent[0][2] || echoed[1][1] != echoed[0][2] || echoed[1][3] != sent[1][2] {
			t.Errorf("`%s`: the nc connection's seq/ack do not go on across the hand-off: sent %v, echoed %v in\n%s", live.text, sent, echoed, seen)
		}

		// The same kept in a file, then read.
		_, keep := find("sudo tcpdump -ni IF --immediate-mode -w /tmp/handoff.pcap")
		w := l.start(l.shell(keep, keep.where[0]))
		time.Sleep(time.Second)
		l.handOff()
		fmt.Fprintln(nc.in, "line three")
		nc.await(t, "nc after the second hand-off", "line three\n")
		time.Sleep(500 * time.Millisecond)
		w.stop(syscall.SIGINT)
		_, read := find("tcpdump -nr /tmp/handoff.pcap")
		out = l.run(read.text, l.shell(read, read.where[0]))
		if !strings.Contains(out, "Request who-has 192.0.2.100 tell 192.0.2.100") || !strings.Contains(out, "192.0.2.10.40000 > 192.0.2.100.7") {
			t.Errorf("`%s` shows no gratuitous ARP or no nc segment:\n%s", read.text, out)
		}
		nc.stop(syscall.SIGKILL)

		// The guide's one-host spelling of the ping client.
		l.clientAcrossHandOff(inline("sudo ip netns exec ss-client bin/sockshift client --addr 192.0.2.100:7 --mode ping"), "")
	})

	t.Run("classroom 3: the chat keeps its state", func(t *testing.T) {
		l.t = t
		b, err := os.ReadFile("../../docs/classroom.md")
		if err != nil {
			t.Fatal(err)
		}
		said := func(re string) []string {
			t.Helper()
			m := regexp.MustCompile(re).FindStringSubmatch(string(b))
			if m == nil {
				t.Fatalf("classroom.md has no %s", re)
			}
			return m
		}
		nick, user, channel := said("`NICK ([^`]+)`")[1], said("`(USER [^`]+)`")[1], said("`JOIN (#[^`]+)`")[1]
		topic := said("`TOPIC (#[^ `]+) :([^`]+)`")
		c := inline("nc CHATVIP 6667")
		one := l.start(l.shell(c, "client"))
		fmt.Fprintf(one.in, "NICK %s\r\n%s\r\nJOIN %s\r\n", nick, user, channel)
		one.await(t, "nc registered", " 001 "+nick+" ")
		one.await(t, "nc in "+channel, " 366 "+nick+" "+channel)
		other := nick + "2"
		two := l.start(l.shell(c, "client"))
		fmt.Fprintf(two.in, "NICK %s\r\nUSER %s 0 * :Other\r\nJOIN %s\r\n", other, other, channel)
		two.await(t, "the other nc in "+channel, " 366 "+other+" "+channel)
		parent := l.t
		l.t = top // it lives on into exercise 5
		pinged = l.start(l.shell(c, "client"))
		l.t = parent
		pingedSince = time.Now()
		fmt.Fprintf(pinged.in, "NICK %s3\r\nUSER %s3 0 * :Quiet\r\nJOIN %s\r\n", nick, nick, channel)
		if topic[1] != channel {
			t.Errorf("the guide sets the topic of %s, its students are in %s", topic[1], channel)
		}
		fmt.Fprintf(one.in, "TOPIC %s :%s\r\n", topic[1], topic[2])
		two.await(t, "the topic set", "TOPIC "+channel+" :"+topic[2])

		// Half a line, as Ctrl-D sends it, chat moved alone, the rest.
		fmt.Fprintf(one.in, "PRIVMSG %s :half a line", channel)
		time.Sleep(300 * time.Millisecond)
		hc := inline("bin/sockshift handoff --service chat")
		before := l.holders()
		l.run(hc.text, l.shell(hc, ""))
		after := l.holders()
		if after["chat"] == before["chat"] || after["echo"] != before["echo"] {
			t.Errorf("`%s`: holders %v before, %v after; want chat moved alone", hc.text, before, after)
		}
		fmt.Fprintln(one.in, " and its end")
		two.await(t, "the finished line", "PRIVMSG "+channel+" :half a line and its end")
		mark := len(two.out.String())
		fmt.Fprintf(two.in, "NAMES %s\r\nTOPIC %s\r\n", channel, channel)
		two.await(t, "TOPIC after the hand-off", " 332 "+other+" "+channel+" :"+topic[2])
		rest := two.out.String()[mark:]
		names := regexp.MustCompile(` 353 \S+ . ` + regexp.QuoteMeta(channel) + ` :(.*)`).FindStringSubmatch(rest)
		var members []string
		if names != nil {
			for _, n := range strings.Fields(names[1]) {
				members = append(members, strings.TrimLeft(n, "@+"))
			}
		}
		if !slices.Contains(members, nick) || !slices.Contains(members, other) {
			t.Errorf("NAMES %s after the hand-off: %v in\n%s", channel, names, rest)
		}
		if n := strings.Count(two.out.String(), "half a line"); n != 1 {
			t.Errorf("the half line arrived %d times:\n%s", n, two.out.String())
		}
		// The bots talk elsewhere: nothing of theirs reaches the class.
		for _, bot := range botNicks {
			if strings.Contains(two.out.String(), ":"+bot+"!") {
				t.Errorf("the bot %s talks in the class's %s:\n%s", bot, channel, two.out.String())
			}
		}
		l.run(hc.text, l.shell(hc, "")+" --to "+after["echo"]) // together again
		one.stop(syscall.SIGKILL)
		two.stop(syscall.SIGKILL)
	})

	t.Run("classroom 4: step mode", func(t *testing.T) {
		l.t = t
		_, sc := find("sockshift client --addr VIP:7 --mode stream --rate 10000")
		pre := l.clientConns()
		stream := l.start(l.shell(sc, sc.where[0]))
		stream.await(t, sc.text, " 0 errors")
		var peer string
		for c := range l.clientConns() {
			if !pre[c] {
				peer = c
			}
		}
		if peer == "" {
			t.Fatalf("`%s`: no new connection on the client", sc.text)
		}
		from := l.holder()
		to := otherRole(from)
		recvQ := func() int {
			t.Helper()
			e := ssEntry(l.run(ssCmd.text, l.watchOnce(ssCmd, from)), peer)
			f := strings.Fields(e)
			if len(f) == 0 {
				t.Fatalf("`%s` on %s lists no stream connection %s", ssCmd.text, from, peer)
			}
			n, _ := strconv.Atoi(f[0])
			return n
		}

		since := time.Now()
		l.post("/api/handoff", `{"step":true}`, http.StatusAccepted)
		l.stepTo("freeze")
		tFreeze := time.Now()
		l.step(false) // freeze
		l.waitStep("release")
		q1, r1 := recvQ(), timeouts(t, stream)
		time.Sleep(2 * time.Second)
		q2, r2 := recvQ(), timeouts(t, stream)
		if q2 <= q1 {
			t.Errorf("after freeze, the stream's Recv-Q on %s went %d → %d in 2 s: the guide says the kernel still takes its segments in", from, q1, q2)
		}
		if r2 != r1 {
			t.Errorf("after freeze, with the address still on %s, the stream's timeouts went %d → %d: the guide says they stay", from, r1, r2)
		}
		if ack := lastAck(t, l, peer); ack > 1000 {
			t.Errorf("after freeze the client's lastack: is %d ms: the guide says acknowledgements still come", ack)
		}
		tRelease := time.Now()
		l.step(false) // release
		l.waitStep("dump")
		time.Sleep(3 * time.Second)
		q3, r3 := recvQ(), timeouts(t, stream)
		if r3 <= r2 {
			t.Errorf("after release the stream's timeouts went %d → %d: the guide says they grow", r2, r3)
		}
		if ack := lastAck(t, l, peer); ack < 2000 {
			t.Errorf("3 s after release the client's lastack: is %d ms: the guide says nothing acknowledges any more", ack)
		}
		if e := ssEntry(l.run("ss on the client", "ip netns exec "+l.prefix+"-client ss -tnie dst 192.0.2.100:7"), peer); field(e, "backoff:") == "" || field(e, "rto:") == "" {
			t.Errorf("after release the guide has the client's ss show rto: and backoff:; it shows:\n%s", e)
		}
		time.Sleep(time.Second)
		if q4 := recvQ(); q4 != q3 {
			t.Errorf("after release, the stream's Recv-Q on %s still changes (%d → %d): the guide says nothing reaches the socket", from, q3, q4)
		}
		l.stepTo("announce")
		// Restore done, commit not yet: B lists the stream, holds no VIP.
		if out := l.run("ip addr show", "ip -n "+l.prefix+"-"+to+" addr show dev eth0"); strings.Contains(out, "192.0.2.100/32") {
			t.Errorf("before the commit %s holds the VIP:\n%s", to, out)
		}
		if out := l.run("ss on B", "ip netns exec "+l.prefix+"-"+to+" ss -tn state established '( sport = :7 )'"); !strings.Contains(out, peer) {
			t.Errorf("after restore `ss -tn` on %s lists no %s:\n%s", to, peer, out)
		}
		l.step(false) // commit and announce
		l.waitStep("resume")
		if out := l.run(neighCmd.text, l.watchOnce(neighCmd, "client")); !strings.Contains(out, l.state().macs()[to]) {
			t.Errorf("after commit and announce the client's ARP entry names no %s: %q", to, out)
		}
		l.step(false) // resume
		rep := l.awaitReport(since)
		if !rep.OK {
			t.Fatalf("the step-mode hand-off failed: %s", rep.Error)
		}
		// The report's longest stall is the client's wait, as its gap is
		// (the console's ping client waited from the freeze to the resume).
		if f := rep.Fate; f == nil || rep.GapUS == 0 || float64(f.WorstStallMS)*1000 < 0.9*float64(rep.GapUS) {
			t.Errorf("a step-mode hand-off with a gap of %d µs reports a longest stall of %+v", rep.GapUS, rep.Fate)
		}
		// Its capture keeps what the class looked at: the client's frames
		// while frozen with the address, and after the release.
		frozen, released := l.capturedBetween(tFreeze.Add(100*time.Millisecond), tRelease), l.capturedBetween(tRelease.Add(100*time.Millisecond), tRelease.Add(3*time.Second))
		if frozen == 0 || released == 0 {
			t.Errorf("the step-mode capture (%d frames) has %d frames from the freeze to the release and %d after the release", rep.Capture.Frames, frozen, released)
		}
		mark := len(stream.out.String())
		time.Sleep(2500 * time.Millisecond)
		if rest := stream.out.String()[mark:]; !strings.Contains(rest, " 0 errors") {
			t.Errorf("the stream after the step-mode hand-off:\n%s", stream.out.String())
		}

		// Abort while the console waits at commit and announce.
		since = time.Now()
		l.post("/api/handoff", `{"step":true}`, http.StatusAccepted)
		l.stepTo("announce")
		l.step(true)
		rep = l.awaitReport(since)
		if rep.OK || !rep.RolledBack || rep.Connections != 0 || !strings.Contains(rep.Error, "failed at announce") || !strings.Contains(rep.Error, "stopped by the operator") {
			t.Errorf("an abort before commit and announce reads: ok %v, rolled back %v, %d connections, %q", rep.OK, rep.RolledBack, rep.Connections, rep.Error)
		}
		if h := l.holder(); h != to {
			t.Errorf("after the abort the VIP is on %s, want %s still", h, to)
		}
		mark = len(stream.out.String())
		time.Sleep(2500 * time.Millisecond)
		stream.stop(syscall.SIGINT)
		if rest := stream.out.String()[mark:]; !strings.Contains(rest, " 0 errors") {
			t.Errorf("the stream after the abort:\n%s", stream.out.String())
		}
	})

	t.Run("classroom 5: break it", func(t *testing.T) {
		l.t = t
		b, _ := os.ReadFile("../../docs/classroom.md")
		// Exercise 3's silent client got the PING the guide describes, and
		// the PONG it says to send keeps it connected.
		if pinged == nil {
			t.Fatal("exercise 3 did not run")
		}
		for deadline := pingedSince.Add(50 * time.Second); !strings.Contains(pinged.out.String(), "PING :sockshift"); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no `PING :sockshift` to a client silent for %v:\n%s", time.Since(pingedSince), pinged.out.String())
			}
		}
		if d := time.Since(pingedSince); d < 25*time.Second {
			t.Errorf("the PING came %v after the client fell silent; the guide says 30 s", d)
		}
		fmt.Fprint(pinged.in, "PONG :sockshift\r\n")
		mark := len(pinged.out.String())
		fmt.Fprint(pinged.in, "NAMES #class\r\n")
		pinged.awaitAfter(t, "the client that answered PONG", mark, " 366 ")
		if strings.Contains(pinged.out.String(), "ERROR") {
			t.Errorf("the client that answered the PING:\n%s", pinged.out.String())
		}

		hold := time.Duration(l.state().Features.BreakHoldMS) * time.Millisecond
		if hold < 10*time.Second || !strings.Contains(string(b), fmt.Sprintf("waits %d seconds", int(hold.Seconds()))) {
			t.Errorf("break-it holds %v; the guide says otherwise", hold)
		}
		to := otherRole(l.holder())
		start := time.Now()
		got := make(chan time.Duration, 1)
		go func() {
			l.postReport(`{"break":{"skip_announce":true}}`)
			got <- time.Since(start)
		}()
		time.Sleep(hold / 2)
		if out := l.run("ss on the client", "ip netns exec "+l.prefix+"-client ss -tnie dst 192.0.2.100"); !strings.Contains(out, "retrans:") {
			t.Errorf("with the announce skipped, `ss -tnie` on the client shows no retrans:\n%s", out)
		}
		if took := <-got; took < hold {
			t.Errorf("the broken hand-off was put right after %v, before its hold of %v", took, hold)
		}
		if out := l.run(neighCmd.text, l.watchOnce(neighCmd, "client")); !strings.Contains(out, l.state().macs()[to]) {
			t.Errorf("once put right the client's ARP entry names no %s: %q", to, out)
		}

		// Keep the address: a student's own session is reset, as the
		// guide warns.
		nc := l.start("ip netns exec " + l.prefix + "-client nc 192.0.2.100 7")
		fmt.Fprintln(nc.in, "mine")
		nc.await(t, "nc", "mine\n")
		l.postReport(`{"break":{"skip_announce":true,"keep_vip":true}}`)
		fmt.Fprintln(nc.in, "still there?")
		select {
		case <-nc.ended:
		case <-time.After(10 * time.Second):
			t.Errorf("the guide warns that keeping the address resets your own nc; it did not:\n%s", nc.out.String())
		}
	})

	t.Run("inline commands", func(t *testing.T) {
		l.t = t
		all := readInlineCommands(t)
		done := map[string]bool{}
		for _, c := range all {
			if _, ok := inlineNotRun[c.text]; ok || done[c.text] || inlineRan[c.text] {
				continue
			}
			done[c.text] = true
			switch c.text {
			case "bin/sockshift handoff --service chat":
				before := l.holders()
				l.run(c.text, l.shell(c, ""))
				after := l.holders()
				if after["chat"] == before["chat"] || after["echo"] != before["echo"] {
					t.Errorf("`%s`: holders %v before, %v after; want chat moved alone", c.text, before, after)
				}
				// Together again, for what follows.
				l.run(c.text, l.shell(c, "")+" --to "+after["echo"])
			case "bin/sockshift handoff [--to a|b] [--service chat]", "bin/sockshift handoff [--to a|b]":
				first := "a"
				if l.holder() == "a" {
					first = "b"
				}
				for _, to := range []string{first, otherRole(first)} {
					l.run(c.text, strings.NewReplacer("[--to a|b]", "--to "+to, "[--service chat]", "").Replace(l.shell(c, "")))
					if h := l.holder(); h != to {
						t.Errorf("`%s` with --to %s: the VIP is on %s", c.text, to, h)
					}
				}
			case "nc CHATVIP 6667":
				nc := l.start(l.shell(c, "client"))
				fmt.Fprint(nc.in, "NICK grace2\r\nUSER grace2 0 * :Grace\r\n")
				nc.await(t, c.text, " 001 grace2 ")
			case "ip addr show dev IF":
				if out := l.run(c.text, l.shell(c, l.holder())); !strings.Contains(out, "192.0.2.100/32") {
					t.Errorf("`%s` on the holder shows no VIP:\n%s", c.text, out)
				}
			case "ip -br addr":
				if out := l.run(c.text, l.shell(c, "a")); !strings.Contains(out, "eth0") || !strings.Contains(out, "192.0.2.1/24") {
					t.Errorf("`%s` on server A:\n%s", c.text, out)
				}
			case "sudo scripts/demo":
			default:
				t.Errorf("%s: `%s` is not run by this test: run it here, or say in inlineNotRun why not", c.file, c.text)
			}
		}
		for text := range inlineNotRun {
			if !slices.ContainsFunc(all, func(c docCommand) bool { return c.text == text }) {
				t.Errorf("inlineNotRun lists `%s`, which the guides no longer have: remove it", text)
			}
		}
	})

	for i, c := range cmds {
		if !ran[i] {
			t.Errorf("%s:%d: `%s` is not run by this test: run it here, or say in notRunHere why not", c.file, c.line, c.text)
		}
	}
}

// clientAcrossHandOff runs `sockshift client` for a few seconds around a
// hand-off, stops it as Ctrl-C does, and checks it counted no error.
func (l *docLab) clientAcrossHandOff(c docCommand, role string) {
	l.t.Helper()
	p := l.start(l.shell(c, role))
	p.await(l.t, c.text, " 0 errors")
	l.handOff()
	time.Sleep(1500 * time.Millisecond)
	p.stop(syscall.SIGINT)
	out := p.out.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if last := lines[len(lines)-1]; !strings.Contains(last, " 0 errors") || !strings.Contains(last, "retransmits") {
		l.t.Errorf("`%s` across a hand-off:\n%s", c.text, out)
	}
}

// watched is the command a `watch -n N CMD` line runs once.
func watched(s string) string {
	f := strings.SplitN(s, " ", 4)
	return strings.Trim(f[3], `"`)
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", path)
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// leftoversOf lists the namespaces named after prefix.
func leftoversOf(prefix string) []string {
	out, _ := exec.Command("ip", "netns", "list").Output()
	var left []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			left = append(left, f[0])
		}
	}
	return left
}

func otherRole(r string) string {
	if r == "a" {
		return "b"
	}
	return "a"
}

// watchOnce is the command a `watch -n N CMD` line of the guides runs, as
// this lab runs it on role, once.
func (l *docLab) watchOnce(c docCommand, role string) string {
	return l.shell(docCommand{file: c.file, text: watched(c.text)}, role)
}

// ssEntry is the entry of `ss` output (its line and the indented line of
// details under it) for the connection with the address addr:port at
// either end; "" if none.
func ssEntry(out, peer string) string {
	var entry []string
	found := false
	for line := range strings.Lines(out) {
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
			if found {
				break
			}
			entry = entry[:0]
			found = slices.Contains(strings.Fields(line), peer)
		}
		entry = append(entry, strings.TrimRight(line, "\n"))
	}
	if !found {
		return ""
	}
	return strings.Join(entry, "\n")
}

// field is the value of a `name:value` field of an ss entry.
func field(entry, name string) string {
	for _, f := range strings.Fields(entry) {
		if v, ok := strings.CutPrefix(f, name); ok {
			return v
		}
	}
	return ""
}

// timeouts is the last count of retransmission timeouts a `sockshift
// client` printed.
func timeouts(t *testing.T, p *proc) int {
	t.Helper()
	m := regexp.MustCompile(`(\d+) timeouts`).FindAllStringSubmatch(p.out.String(), -1)
	if m == nil {
		t.Fatalf("the client printed no timeouts:\n%s", p.out.String())
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// lastAck is `ss -tnie`'s lastack: (ms) for the client's connection from
// local, read on the client as the guide has it.
func lastAck(t *testing.T, l *docLab, local string) int {
	t.Helper()
	out := l.run("ss on the client", "ip netns exec "+l.prefix+"-client ss -tnie dst 192.0.2.100:7")
	n, err := strconv.Atoi(field(ssEntry(out, local), "lastack:"))
	if err != nil {
		t.Fatalf("`ss -tnie` on the client has no lastack: for %s:\n%s", local, out)
	}
	return n
}

// clientConns are the client's connections to echo on the VIP, by local
// address.
func (l *docLab) clientConns() map[string]bool {
	l.t.Helper()
	out := l.run("ss on the client", "ip netns exec "+l.prefix+"-client ss -tnH state established dst 192.0.2.100:7")
	conns := map[string]bool{}
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) >= 3 {
			conns[f[2]] = true
		}
	}
	return conns
}

// docState is what the tests read of GET /api/state.
type docState struct {
	Nodes []struct{ Name, MAC string }
	Step  *struct {
		Waiting string
		Done    []string
	}
	Features struct {
		BreakHoldMS int64 `json:"break_hold_ms"`
	}
}

func (s docState) macs() map[string]string {
	m := map[string]string{}
	for _, n := range s.Nodes {
		m[n.Name] = n.MAC
	}
	return m
}

func (l *docLab) state() docState {
	l.t.Helper()
	var st docState
	l.getJSON("/api/state", &st)
	return st
}

// docReport is what the tests read of a hand-off's report.
type docReport struct {
	OK          bool
	Error       string
	RolledBack  bool `json:"rolled_back"`
	Connections int
	Caught      int
	Step        bool
	StartedMS   int64 `json:"started_ms"`
	Moved       []struct {
		Client        string
		Before, After map[string]any
	}
	ARPBefore string `json:"arp_before"`
	ARPAfter  string `json:"arp_after"`
	GapUS     int64  `json:"gap_us"`
	Capture   struct{ Frames int }
	Fate      *struct {
		ToSource     int   `json:"to_source"`
		WorstStallMS int64 `json:"worst_stall_ms"`
	}
}

// capturedBetween counts the frames of the latest hand-off's capture
// (GET /api/handoffs/latest.pcap) from from to to.
func (l *docLab) capturedBetween(from, to time.Time) int {
	l.t.Helper()
	resp, err := http.Get("http://" + l.console + "/api/handoffs/latest.pcap")
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	r, err := pcapgo.NewReader(resp.Body)
	if err != nil {
		l.t.Fatalf("latest.pcap: %v", err)
	}
	n := 0
	for {
		_, ci, err := r.ReadPacketData()
		if err != nil {
			return n
		}
		if !ci.Timestamp.Before(from) && !ci.Timestamp.After(to) {
			n++
		}
	}
}

func (l *docLab) latest() docReport {
	l.t.Helper()
	var r docReport
	l.getJSON("/api/handoffs/latest.json", &r)
	return r
}

func (l *docLab) getJSON(path string, v any) {
	l.t.Helper()
	resp, err := http.Get("http://" + l.console + path)
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		l.t.Fatalf("GET %s: %v", path, err)
	}
}

// post sends body to the console and wants status back.
func (l *docLab) post(path, body string, status int) []byte {
	l.t.Helper()
	resp, err := http.Post("http://"+l.console+path, "application/json", strings.NewReader(body))
	if err != nil {
		l.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		l.t.Fatalf("POST %s %s: %s %s", path, body, resp.Status, b)
	}
	return b
}

// postReport runs a hand-off to its end and returns its report.
func (l *docLab) postReport(body string) docReport {
	l.t.Helper()
	var r docReport
	if err := json.Unmarshal(l.post("/api/handoff", body, http.StatusOK), &r); err != nil {
		l.t.Fatal(err)
	}
	return r
}

// step releases the phase a step-mode hand-off waits for (or aborts).
func (l *docLab) step(abort bool) {
	l.t.Helper()
	l.post("/api/step", fmt.Sprintf(`{"abort":%v}`, abort), http.StatusOK)
}

// waitStep waits until the step-mode hand-off waits before phase.
func (l *docLab) waitStep(phase string) {
	l.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := l.state()
		if st.Step != nil && st.Step.Waiting == phase {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the step-mode hand-off never waited before %s: %+v", phase, st.Step)
		}
	}
}

// stepTo releases each phase until the hand-off waits before phase.
func (l *docLab) stepTo(phase string) {
	l.t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := l.state()
		switch {
		case st.Step != nil && st.Step.Waiting == phase:
			return
		case st.Step != nil && st.Step.Waiting != "":
			l.step(false)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("the step-mode hand-off never waited before %s: %+v", phase, st.Step)
		}
	}
}

// awaitReport waits for the report of a hand-off started after since.
func (l *docLab) awaitReport(since time.Time) docReport {
	l.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + l.console + "/api/handoffs/latest.json")
		if err == nil {
			var r docReport
			if resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&r) == nil && r.StartedMS >= since.UnixMilli() && l.state().Step == nil {
				resp.Body.Close()
				return r
			}
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("no report of the hand-off started at %v", since)
		}
	}
}
