package chat_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/sockshift/sockshift/demo/internal/labtest"
	"github.com/sockshift/sockshift/handoff/nstest"
)

// clientLab starts the lab with the servers' default PING interval (30 s).
// With a PING every second irssi never sends a typed /join (on the wire
// only its PONGs go out, a second apart), and no server PINGs that often.
func clientLab(t *testing.T) *labtest.Env { return labtest.Start(t, nil) }

// Three IRC clients from Debian go through the same hand-offs A->B->A
// (clientThroughHandOffs): ii (files and FIFOs), irssi (a terminal
// program, typed into and read through tmux) and weechat-headless (driven
// through its FIFO, read from its log).

func TestIIThroughHandOffs(t *testing.T) {
	nstest.NeedTool(t, "ii", "ii")
	env := clientLab(t)
	dir := t.TempDir()
	host := chatHost(env)
	cmd := exec.Command("ip", "netns", "exec", env.Lab.Client.Namespace,
		"ii", "-s", host, "-p", strconv.Itoa(chatPort), "-n", "iiuser", "-i", dir)
	cmd.Stderr = os.Stderr // its stdout echoes every line: too chatty for a test log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	srv := filepath.Join(dir, host)
	waitFile(t, filepath.Join(srv, "in"))
	waitFor(t, filepath.Join(srv, "out"), "Welcome")
	toFIFO(t, filepath.Join(srv, "in"), "/j #lab")
	waitFile(t, filepath.Join(srv, "#lab", "in"))
	clientThroughHandOffs(t, env, "iiuser", &iiClient{t: t, cmd: cmd, srv: srv})
}

// iiClient: ii reads a channel's FIFO a line at a time and throws away a
// line without its newline, so its user's half line waits in the user's
// hands (here, half) until it is finished.
type iiClient struct {
	t    *testing.T
	cmd  *exec.Cmd
	srv  string
	half string
}

func (c *iiClient) chanIn() string { return filepath.Join(c.srv, "#lab", "in") }

func (c *iiClient) say(text string)      { toFIFO(c.t, c.chanIn(), text) }
func (c *iiClient) typeHalf(text string) { c.half += text }
func (c *iiClient) finish(text string)   { c.say(c.half + text); c.half = "" }

func (c *iiClient) command(cmd string) {
	// ii's own commands: /t topic in the channel, /n nick on the server,
	// /a away; anything else goes raw, as ii's user types it (its slash
	// dropped) into the server's FIFO.
	srvIn := filepath.Join(c.srv, "in")
	switch {
	case cmd == "/away" || strings.HasPrefix(cmd, "/away "):
		toFIFO(c.t, srvIn, "/a"+strings.TrimPrefix(cmd, "/away"))
	case strings.HasPrefix(cmd, "/op "):
		toFIFO(c.t, srvIn, "/MODE #lab +o "+strings.TrimPrefix(cmd, "/op "))
	case strings.HasPrefix(cmd, "/mode "):
		toFIFO(c.t, srvIn, "/MODE "+strings.TrimPrefix(cmd, "/mode "))
	case strings.HasPrefix(cmd, "/kick "):
		nick, reason, _ := strings.Cut(strings.TrimPrefix(cmd, "/kick "), " ")
		toFIFO(c.t, srvIn, "/KICK #lab "+nick+" :"+reason)
	case strings.HasPrefix(cmd, "/topic #lab "):
		toFIFO(c.t, c.chanIn(), "/t "+strings.TrimPrefix(cmd, "/topic #lab "))
	case strings.HasPrefix(cmd, "/nick "):
		toFIFO(c.t, filepath.Join(c.srv, "in"), "/n "+strings.TrimPrefix(cmd, "/nick "))
	default:
		c.t.Fatalf("ii: no command for %q", cmd)
	}
}

func (c *iiClient) transcript() string {
	b, _ := os.ReadFile(filepath.Join(c.srv, "#lab", "out"))
	return string(b)
}

// shows: ii writes "<unix time> <nick> text".
func (c *iiClient) shows(from, text string) int {
	return lineCount(c.transcript(), regexp.MustCompile(`^\d+ <`+regexp.QuoteMeta(from)+`> `+regexp.QuoteMeta(text)+`$`))
}

func (c *iiClient) alive() error { return c.cmd.Process.Signal(syscall.Signal(0)) }

func TestIrssiThroughHandOffs(t *testing.T) {
	nstest.NeedTool(t, "irssi", "irssi")
	nstest.NeedTool(t, "tmux", "tmux")
	env := clientLab(t)
	dir := t.TempDir()
	c := &irssiClient{t: t, sock: filepath.Join(dir, "tmux.sock")}
	c.tmux("-f", "/dev/null", "new-session", "-d", "-s", "irc", "-x", "250", "-y", "200",
		fmt.Sprintf("ip netns exec %s irssi --home=%s -n irssiuser -c %s -p %d",
			env.Lab.Client.Namespace, filepath.Join(dir, "home"), chatHost(env), chatPort))
	t.Cleanup(func() { exec.Command("tmux", "-S", c.sock, "kill-server").Run() })
	c.tmux("set-option", "-t", "irc", "remain-on-exit", "on") // a dead irssi stays visible
	waitTranscript(t, c, "Welcome to the sockshift chat")
	c.keys("/join #lab")
	waitTranscript(t, c, "has joined #lab")
	clientThroughHandOffs(t, env, "irssiuser", c)
}

// irssiClient types into irssi with tmux send-keys and reads its screen
// (with the scrollback) with capture-pane.
type irssiClient struct {
	t    *testing.T
	sock string
}

func (c *irssiClient) tmux(args ...string) string {
	c.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", c.sock}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// keys types a line (literally) and Enter.
func (c *irssiClient) keys(line string) {
	c.tmux("send-keys", "-t", "irc", "-l", line)
	c.tmux("send-keys", "-t", "irc", "Enter")
}

func (c *irssiClient) say(text string)      { c.keys(text) }
func (c *irssiClient) typeHalf(text string) { c.tmux("send-keys", "-t", "irc", "-l", text) }
func (c *irssiClient) finish(text string)   { c.keys(text) }
func (c *irssiClient) command(cmd string)   { c.keys(cmd) }

func (c *irssiClient) transcript() string {
	return c.tmux("capture-pane", "-p", "-J", "-t", "irc", "-S", "-")
}

// shows: irssi writes "HH:MM <mnick> text", m the nick's mode or a space.
func (c *irssiClient) shows(from, text string) int {
	return lineCount(c.transcript(), regexp.MustCompile(`^\d\d:\d\d <[ @+]`+regexp.QuoteMeta(from)+`> `+regexp.QuoteMeta(text)+`$`))
}

func (c *irssiClient) alive() error {
	if dead := strings.TrimSpace(c.tmux("list-panes", "-t", "irc", "-F", "#{pane_dead}")); dead != "0" {
		return errors.New("irssi exited")
	}
	if strings.Contains(c.transcript(), "Connection lost") {
		return errors.New("irssi lost its connection")
	}
	return nil
}

func TestWeechatThroughHandOffs(t *testing.T) {
	nstest.NeedTool(t, "weechat-headless", "weechat-headless")
	env := clientLab(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	setup := strings.Join([]string{
		"/set logger.file.flush_delay 0",
		"/set fifo.file.path " + fifo,
		fmt.Sprintf("/server add lab %s/%d -notls", chatHost(env), chatPort),
		"/set irc.server.lab.nicks weeuser",
		"/set irc.server.lab.username weeuser",
		"/set irc.server.lab.autojoin #lab",
		"/connect lab",
	}, ";")
	cmd := exec.Command("ip", "netns", "exec", env.Lab.Client.Namespace,
		"weechat-headless", "--dir", dir, "-r", setup)
	var out labtest.Output
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFile(t, fifo)
	c := &weechatClient{t: t, cmd: cmd, dir: dir, fifo: fifo}
	waitFile(t, c.chanLog())
	clientThroughHandOffs(t, env, "weeuser", c)
	if t.Failed() {
		t.Logf("weechat's output:\n%s", out.String())
	}
}

// weechatClient sends through weechat's FIFO ("buffer *text"; "/input"
// types without sending) and reads the channel's log.
type weechatClient struct {
	t    *testing.T
	cmd  *exec.Cmd
	dir  string
	fifo string
}

func (c *weechatClient) chanLog() string {
	return filepath.Join(c.dir, "logs", "irc.lab.#lab.weechatlog")
}

func (c *weechatClient) toBuffer(text string) { toFIFO(c.t, c.fifo, "irc.lab.#lab *"+text) }

func (c *weechatClient) say(text string)      { c.toBuffer(text) }
func (c *weechatClient) typeHalf(text string) { c.toBuffer("/input insert " + text) }
func (c *weechatClient) finish(text string) {
	c.toBuffer("/input insert " + text)
	c.toBuffer("/input return")
}
func (c *weechatClient) command(cmd string) { c.toBuffer(cmd) }

func (c *weechatClient) transcript() string {
	b, _ := os.ReadFile(c.chanLog())
	return string(b)
}

// shows: the log has "date time<TAB>nick<TAB>text".
func (c *weechatClient) shows(from, text string) int {
	return lineCount(c.transcript(), regexp.MustCompile(`\t[@+]?`+regexp.QuoteMeta(from)+`\t`+regexp.QuoteMeta(text)+`$`))
}

func (c *weechatClient) alive() error {
	if err := c.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		return fmt.Errorf("weechat exited: %w", err)
	}
	b, _ := os.ReadFile(filepath.Join(c.dir, "logs", "irc.server.lab.weechatlog"))
	if strings.Contains(string(b), "disconnected from server") {
		return errors.New("weechat was disconnected")
	}
	return nil
}
