package chat_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sockshift/sockshift/demo/chat"
)

// ircClient is a test's IRC client, written with plain sockets: it keeps
// every message it receives, answers PINGs, and lets the test wait for a
// message from where it last looked.
type ircClient struct {
	t    testing.TB
	c    net.Conn
	nick string

	wmu    sync.Mutex
	mu     sync.Mutex
	got    []chat.Message
	raw    []string    // got's lines as sent, without CR LF
	pings  []time.Time // server PINGs, when they came
	err    error       // the read that ended the client
	cursor int
	noPong bool
}

func newClient(t testing.TB, c net.Conn, nick string) *ircClient {
	ic := &ircClient{t: t, c: c, nick: nick}
	t.Cleanup(func() { c.Close() })
	go ic.read()
	return ic
}

func (ic *ircClient) read() {
	r := bufio.NewReader(ic.c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			ic.mu.Lock()
			ic.err = err
			ic.mu.Unlock()
			return
		}
		if !strings.HasSuffix(line, "\r\n") {
			ic.mu.Lock()
			ic.err = fmt.Errorf("line without CR LF: %q", line)
			ic.mu.Unlock()
		}
		m, err := chat.ParseLine(strings.TrimRight(line, "\r\n"))
		if err != nil {
			ic.mu.Lock()
			ic.err = fmt.Errorf("server sent a bad line %q: %v", line, err)
			ic.mu.Unlock()
			continue
		}
		ic.mu.Lock()
		ic.got = append(ic.got, m)
		ic.raw = append(ic.raw, strings.TrimRight(line, "\r\n"))
		pong := m.Command == "PING" && !ic.noPong
		if m.Command == "PING" {
			ic.pings = append(ic.pings, time.Now())
		}
		ic.mu.Unlock()
		if pong {
			ic.write("PONG :" + m.Params[0] + "\r\n")
		}
	}
}

func (ic *ircClient) write(s string) {
	ic.wmu.Lock()
	defer ic.wmu.Unlock()
	ic.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := ic.c.Write([]byte(s)); err != nil {
		ic.t.Errorf("%s: write: %v", ic.nick, err)
	}
}

// send writes one line.
func (ic *ircClient) send(format string, args ...any) {
	ic.write(fmt.Sprintf(format, args...) + "\r\n")
}

// expectRaw waits for the next line, exactly as the server sent it
// without its CR LF.
func (ic *ircClient) expectRaw(line string) {
	ic.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ic.mu.Lock()
		for i := ic.cursor; i < len(ic.raw); i++ {
			if ic.raw[i] == line {
				ic.cursor = i + 1
				ic.mu.Unlock()
				return
			}
		}
		n, err := len(ic.raw), ic.err
		ic.mu.Unlock()
		if err != nil || time.Now().After(deadline) {
			ic.t.Fatalf("%s: no line %q among %d (%v); last: %v", ic.nick, line, n, err, ic.tail(8))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expect waits for the next message with this command (and params, a
// prefix match on the joined params) and returns it.
func (ic *ircClient) expect(cmd string, params ...string) chat.Message {
	ic.t.Helper()
	want := strings.Join(params, " ")
	deadline := time.Now().Add(10 * time.Second)
	for {
		ic.mu.Lock()
		for i := ic.cursor; i < len(ic.got); i++ {
			m := ic.got[i]
			if m.Command == cmd && strings.HasPrefix(strings.Join(m.Params, " "), want) {
				ic.cursor = i + 1
				ic.mu.Unlock()
				return m
			}
		}
		n, err := len(ic.got), ic.err
		ic.mu.Unlock()
		if err != nil || time.Now().After(deadline) {
			ic.t.Fatalf("%s: no %s %q among %d messages (%v); last: %v", ic.nick, cmd, want, n, err, ic.tail(8))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (ic *ircClient) tail(n int) []string {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return append([]string(nil), ic.raw[max(0, len(ic.raw)-n):]...)
}

// messages returns every message received with this command.
func (ic *ircClient) messages(cmd string) []chat.Message {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	var out []chat.Message
	for _, m := range ic.got {
		if m.Command == cmd {
			out = append(out, m)
		}
	}
	return out
}

func (ic *ircClient) readErr() error {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	return ic.err
}

// register sends NICK and USER and waits for the whole welcome.
func (ic *ircClient) register() {
	ic.t.Helper()
	ic.send("NICK %s", ic.nick)
	ic.send("USER %s 0 * :%s test", ic.nick, ic.nick)
	ic.expect("001", ic.nick)
	ic.expect("004")
	ic.expect("005")
	ic.expect("422") // the end of the welcome
}

// join joins ch and waits for the end of its NAMES.
func (ic *ircClient) join(ch string) {
	ic.t.Helper()
	ic.send("JOIN %s", ch)
	ic.expect("366", ic.nick, ch)
}

// roundTrip proves the connection serves: a PING comes back as a PONG.
func (ic *ircClient) roundTrip(token string) {
	ic.t.Helper()
	ic.send("PING :%s", token)
	ic.expect("PONG", "sockshift", token)
}

// sync sends a PING and returns what arrived before its PONG, so a test
// can check that nothing else came (irctest's getMessages).
func (ic *ircClient) sync() []chat.Message {
	ic.t.Helper()
	token := fmt.Sprintf("sync%d", time.Now().UnixNano())
	ic.send("PING :%s", token)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ic.mu.Lock()
		for i := ic.cursor; i < len(ic.got); i++ {
			if m := ic.got[i]; m.Command == "PONG" && m.Params[len(m.Params)-1] == token {
				var out []chat.Message
				for _, m := range ic.got[ic.cursor:i] {
					if m.Command != "PING" { // the server's own keepalive
						out = append(out, m)
					}
				}
				ic.cursor = i + 1
				ic.mu.Unlock()
				return out
			}
		}
		err := ic.err
		ic.mu.Unlock()
		if err != nil || time.Now().After(deadline) {
			ic.t.Fatalf("%s: no PONG %s (%v); last: %v", ic.nick, token, err, ic.tail(8))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// commands lists the commands of ms.
func commands(ms []chat.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Command)
	}
	return out
}
