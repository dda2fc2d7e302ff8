package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bot is a chat client for the demo: it joins a channel and says a
// numbered line every Interval. It checks what comes back: after each line
// it sends PING with the line's number, and the PONGs must come in order,
// one each; lines from other bots (same format) must come in order per
// sender, none missing or repeated. The zero value is ready to use.
type Bot struct {
	Nick     string        // default "bot"; a nick in use gets a "_"
	Channel  string        // default "#lab"
	Interval time.Duration // default 1 s

	// OnLine, if set, is called with every line the bot sends or receives
	// (without line ending); sent lines start with "> ".
	OnLine func(line string)

	mu    sync.Mutex
	stats BotStats
}

// BotStats counts what a bot did.
type BotStats struct {
	Sent      uint64 // lines said in the channel
	Confirmed uint64 // of those, confirmed by their PONG, in order
	Received  uint64 // lines from other bots, in order
	Errors    uint64 // lines missing, repeated or out of order
	LastError string
}

// Stats returns the counts so far.
func (b *Bot) Stats() BotStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

func (b *Bot) fail(format string, args ...any) {
	b.mu.Lock()
	b.stats.Errors++
	b.stats.LastError = fmt.Sprintf(format, args...)
	b.mu.Unlock()
}

func (b *Bot) count(f func(*BotStats)) {
	b.mu.Lock()
	f(&b.stats)
	b.mu.Unlock()
}

// botPrefix marks a bot's line: "lab-bot <n>: ...".
const botPrefix = "lab-bot "

// Run connects with dial, registers, joins and chats until ctx is done
// (then it QUITs and returns nil) or the connection fails (an error).
func (b *Bot) Run(ctx context.Context, dial func(ctx context.Context) (net.Conn, error)) error {
	nick, channel, interval := b.Nick, b.Channel, b.Interval
	if nick == "" {
		nick = "bot"
	}
	if channel == "" {
		channel = "#lab"
	}
	if interval <= 0 {
		interval = time.Second
	}
	nc, err := dial(ctx)
	if err != nil {
		return fmt.Errorf("chat bot: dial: %w", err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	var wmu sync.Mutex
	send := func(line string) error {
		wmu.Lock()
		defer wmu.Unlock()
		if b.OnLine != nil {
			b.OnLine("> " + line)
		}
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := nc.Write([]byte(line + "\r\n"))
		return err
	}
	if err := send("NICK " + nick); err != nil {
		return fmt.Errorf("chat bot: register: %w", err)
	}
	if err := send("USER " + nick + " 0 * :sockshift demo bot"); err != nil {
		return fmt.Errorf("chat bot: register: %w", err)
	}

	// The reader: registration, then the checks.
	joined := make(chan struct{})
	readErr := make(chan error, 1)
	var (
		pmu      sync.Mutex
		nextPong uint64 = 1
	)
	go func() {
		seen := map[string]uint64{} // last number from each other bot
		r := bufio.NewReaderSize(nc, MaxLine)
		registered, inChannel := false, false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				readErr <- err
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if b.OnLine != nil {
				b.OnLine(line)
			}
			m, err := ParseLine(line)
			if err != nil {
				continue
			}
			switch m.Command {
			case "PING":
				if len(m.Params) > 0 {
					send("PONG :" + m.Params[0])
				}
			case "433": // nick in use: try another
				if !registered {
					nick += "_"
					if len(nick) > MaxNickLen {
						readErr <- errors.New("no free nick")
						return
					}
					send("NICK " + nick)
				}
			case "001":
				registered = true
				if len(m.Params) > 0 {
					nick = m.Params[0]
				}
				send("JOIN " + channel)
			case "366":
				if !inChannel {
					inChannel = true
					close(joined)
				}
			case "PONG":
				if len(m.Params) < 2 || !strings.HasPrefix(m.Params[1], "lab-") {
					continue
				}
				n, err := strconv.ParseUint(strings.TrimPrefix(m.Params[1], "lab-"), 10, 64)
				pmu.Lock()
				want := nextPong
				if err == nil && n == want {
					nextPong++
				}
				pmu.Unlock()
				if err != nil || n != want {
					b.fail("PONG for line %s, want %d", m.Params[1], want)
					continue
				}
				b.count(func(s *BotStats) { s.Confirmed++ })
			case "PRIVMSG":
				if len(m.Params) < 2 || fold(m.Params[0]) != fold(channel) {
					continue
				}
				from, _, _ := strings.Cut(m.Prefix, "!")
				n, ok := botNumber(m.Params[1])
				if !ok {
					continue
				}
				last, known := seen[from]
				seen[from] = n
				if known && n != last+1 {
					b.fail("from %s: line %d after %d", from, n, last)
					continue
				}
				b.count(func(s *BotStats) { s.Received++ })
			case "ERROR":
				readErr <- fmt.Errorf("server closed the link: %s", strings.Join(m.Params, " "))
				return
			}
		}
	}()

	wait := func(err error) error {
		if ctx.Err() != nil {
			send("QUIT :bye")
			return nil
		}
		return fmt.Errorf("chat bot %s: %w", nick, err)
	}
	select {
	case <-joined:
	case err := <-readErr:
		return wait(err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for n := uint64(1); ; n++ {
		line := fmt.Sprintf("PRIVMSG %s :%s%d: hello from %s", channel, botPrefix, n, nick)
		if err := send(line); err != nil {
			return wait(err)
		}
		if err := send("PING :lab-" + strconv.FormatUint(n, 10)); err != nil {
			return wait(err)
		}
		b.count(func(s *BotStats) { s.Sent++ })
		select {
		case <-t.C:
		case err := <-readErr:
			return wait(err)
		case <-ctx.Done():
			return wait(ctx.Err())
		}
	}
}

// botNumber reads the number of a bot's line.
func botNumber(text string) (uint64, bool) {
	rest, ok := strings.CutPrefix(text, botPrefix)
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ":")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	return n, err == nil
}
