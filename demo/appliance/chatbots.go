package appliance

import (
	"context"
	"net"
	"strings"
	"time"

	"github.com/sockshift/sockshift/demo/chat"
	"github.com/sockshift/sockshift/demo/lab"
	"github.com/sockshift/sockshift/web"
)

// botNicks are the demo's chat bots' nicks; the guides' examples must use
// others (TestDocsCommandsRunAsWritten checks).
var botNicks = [...]string{"ada", "bob"}

// runChatBots keeps two bots chatting in #lab from the client's namespace,
// so the console shows chat lines crossing every hand-off. What the first
// bot says and hears goes to the console as "chat" events.
func (a *Appliance) runChatBots(ctx context.Context) {
	dial := func(ctx context.Context) (net.Conn, error) {
		return a.cluster.Dial(ctx, "tcp4", net.JoinHostPort(lab.ChatVIP.String(), "6667"))
	}
	bots := []*chat.Bot{
		{Nick: botNicks[0], Interval: 1500 * time.Millisecond, OnLine: a.publishChat(botNicks[0])},
		{Nick: botNicks[1], Interval: 2 * time.Second},
	}
	done := make(chan struct{}, len(bots))
	for _, b := range bots {
		go func() {
			defer func() { done <- struct{}{} }()
			for ctx.Err() == nil {
				if err := b.Run(ctx, dial); err != nil && ctx.Err() == nil {
					a.cfg.Log.Printf("chat bot %s: %v; joining again", b.Nick, err)
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}()
	}
	for range bots {
		<-done
	}
}

// publishChat turns a bot's channel traffic into console events: its own
// lines ("> PRIVMSG #lab :...") and the lines of others
// (":bob!... PRIVMSG #lab :...").
func (a *Appliance) publishChat(self string) func(string) {
	return func(line string) {
		from, text, ok := chatLine(self, line)
		if !ok {
			return
		}
		a.console.Publish(web.Event{Type: "chat", Data: web.ChatLine{At: time.Now().UnixMilli(), From: from, Text: text}})
	}
}

func chatLine(self, line string) (from, text string, ok bool) {
	if sent, found := strings.CutPrefix(line, "> "); found {
		m, err := chat.ParseLine(sent)
		if err != nil || m.Command != "PRIVMSG" || len(m.Params) < 2 {
			return "", "", false
		}
		return self, m.Params[1], true
	}
	m, err := chat.ParseLine(line)
	if err != nil || m.Command != "PRIVMSG" || len(m.Params) < 2 || !strings.HasPrefix(m.Params[0], "#") {
		return "", "", false
	}
	nick, _, _ := strings.Cut(m.Prefix, "!")
	return nick, m.Params[1], true
}
