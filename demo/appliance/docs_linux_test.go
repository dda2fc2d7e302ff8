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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/internal/nstest"
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
// console's address are this test's (the README: "use your --lab-prefix",
// `--listen`), and `sockshift handoff` is told the console's address;
// files under /tmp go to the test's own directory; the classroom's
// placeholders VIP and IF are the one-host lab's (its table), and a command
// "on the client" or "on server A" runs in that namespace (`sudo ip netns
// exec ss-client` in front, as its table says). Commands that run until
// stopped (nc, watch, tail -f, tcpdump, a client) run for a few seconds,
// around a hand-off where the guide says to hand off.
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
	if strings.HasPrefix(s, "bin/sockshift handoff") || strings.Contains(s, "sockshift handoff --console") {
		s = regexp.MustCompile(`--console \S+`).ReplaceAllString(s, "")
		s = strings.Replace(s, "sockshift handoff", "sockshift handoff --console "+l.console, 1)
	}
	if c.file == "classroom.md" {
		s = regexp.MustCompile(`\bVIP\b`).ReplaceAllString(s, "192.0.2.100")
		s = regexp.MustCompile(`\bCHATVIP\b`).ReplaceAllString(s, "192.0.2.101")
		s = regexp.MustCompile(`\bIF\b`).ReplaceAllString(s, "eth0")
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

func (l *docLab) env() []string {
	return append(os.Environ(), "PATH="+filepath.Join(l.root, "bin")+":"+os.Getenv("PATH"))
}

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

	t.Run("classroom", func(t *testing.T) {
		l.t = t
		_, c := find("watch -n 0.2 ip neigh show VIP")
		for _, r := range c.where {
			if out := l.run(c.text, l.shell(docCommand{file: c.file, text: watched(c.text)}, r)); !strings.Contains(out, "192.0.2.100") || !strings.Contains(out, "lladdr") {
				t.Errorf("`%s` on %s: %q", c.text, r, out)
			}
		}
		_, c = find("watch -n 0.5 \"ss -tni")
		h := l.holder()
		for _, r := range c.where {
			out := l.run(c.text, l.shell(docCommand{file: c.file, text: watched(c.text)}, r))
			if r == h && !strings.Contains(out, "192.0.2.100:7 ") {
				t.Errorf("`%s` on the holder %s lists no echo connection:\n%s", c.text, r, out)
			}
		}
		_, c = find("sudo tcpdump -ni IF -e")
		dump := l.start(l.shell(c, c.where[0]))
		time.Sleep(time.Second)
		l.handOff()
		dump.await(t, "the gratuitous ARP in tcpdump", "tell 192.0.2.100")
		_, c = find("sudo tcpdump -ni IF -w /tmp/handoff.pcap")
		dump = l.start(l.shell(c, c.where[0]))
		time.Sleep(time.Second)
		l.handOff()
		time.Sleep(500 * time.Millisecond)
		dump.stop(syscall.SIGINT)
		if fi, err := os.Stat(filepath.Join(l.tmp, "handoff.pcap")); err != nil || fi.Size() < 100 {
			t.Errorf("`%s` wrote no capture: %v", c.text, err)
		}
		_, c = find("sockshift client --addr VIP:7 --mode ping --interval 100ms")
		l.clientAcrossHandOff(c, c.where[0])
		_, c = find("sockshift client --addr VIP:7 --mode stream --rate 10000")
		l.clientAcrossHandOff(c, c.where[0])
	})

	t.Run("inline commands", func(t *testing.T) {
		l.t = t
		inline := readInlineCommands(t)
		done := map[string]bool{}
		for _, c := range inline {
			if _, ok := inlineNotRun[c.text]; ok || done[c.text] {
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
			case "nc VIP 7":
				nc := l.start(l.shell(c, "client"))
				fmt.Fprintln(nc.in, "inline")
				nc.await(t, c.text, "inline\n")
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
			if !slices.ContainsFunc(inline, func(c docCommand) bool { return c.text == text }) {
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
