package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

const (
	// subscriberBuffer is how many events a stream may lag behind before it
	// loses some; a state event every 500 ms leaves seconds of slack.
	subscriberBuffer = 64
	// maxSubscribers bounds the open streams (each is a goroutine and a
	// connection); a classroom of browsers fits.
	maxSubscribers = 256
	// heartbeatPeriod keeps idle streams alive through proxies.
	heartbeatPeriod = 15 * time.Second
	// streamWriteTimeout drops a subscriber whose connection stopped
	// accepting bytes, so it cannot hold its goroutine forever.
	streamWriteTimeout = 10 * time.Second
	// reconnectMS is the EventSource retry delay sent to browsers.
	reconnectMS = 2000
)

// broker fans events out to the open streams and, while there is at least
// one, polls the lab's state and publishes it.
type broker struct {
	lab    Lab
	period time.Duration

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	// poll is the running poller, nil when nobody listens.
	poll *poller
}

type subscriber struct {
	frames chan []byte // encoded SSE frames
}

type poller struct {
	cancel context.CancelFunc
	now    chan struct{} // poll at once
	done   chan struct{} // closed when the goroutine is gone
}

func newBroker(lab Lab, period time.Duration) *broker {
	return &broker{lab: lab, period: period, subs: make(map[*subscriber]struct{})}
}

var errTooManySubscribers = errors.New("too many event streams")

// subscribe registers a stream; the first one starts the state poller.
func (b *broker) subscribe() (*subscriber, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.subs) >= maxSubscribers {
		return nil, errTooManySubscribers
	}
	sub := &subscriber{frames: make(chan []byte, subscriberBuffer)}
	b.subs[sub] = struct{}{}
	if b.poll == nil {
		ctx, cancel := context.WithCancel(context.Background())
		b.poll = &poller{cancel: cancel, now: make(chan struct{}, 1), done: make(chan struct{})}
		go b.runPoller(ctx, b.poll)
	}
	return sub, nil
}

// unsubscribe removes a stream; the last one stops the poller.
func (b *broker) unsubscribe(sub *subscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.subs, sub)
	if len(b.subs) == 0 && b.poll != nil {
		b.poll.cancel()
		b.poll = nil
	}
}

func (b *broker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// pollNow asks the poller, if any, for a fresh state at once.
func (b *broker) pollNow() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.poll != nil {
		select {
		case b.poll.now <- struct{}{}:
		default: // a poll is already pending
		}
	}
}

func (b *broker) publish(e Event) {
	frame, err := encodeEvent(e)
	if err != nil {
		return
	}
	b.send(frame)
}

// send hands frame to every subscriber that has room, without waiting.
func (b *broker) send(frame []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		select {
		case sub.frames <- frame:
		default: // too slow: this one loses the event
		}
	}
}

func (b *broker) runPoller(ctx context.Context, p *poller) {
	defer close(p.done)
	t := time.NewTicker(b.period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.now:
		}
		frame := stateFrame(ctx, b.lab, b.period)
		// A poller stopped while it waited on the lab must not publish
		// after its successor.
		if ctx.Err() != nil {
			return
		}
		b.send(frame)
	}
}

// stateFrame asks the lab for its state and encodes it as a "state" event,
// or as an "error" event if the lab fails.
func stateFrame(ctx context.Context, lab Lab, period time.Duration) []byte {
	// A lab that hangs must not stop the stream: bound each poll.
	ctx, cancel := context.WithTimeout(ctx, max(4*period, 2*time.Second))
	defer cancel()
	st, err := lab.State(ctx)
	var e Event
	if err != nil {
		e = Event{Type: "error", Data: errorBody{Error: "lab state: " + err.Error()}}
	} else {
		e = Event{Type: "state", Data: normalizeState(st, lab)}
	}
	frame, err := encodeEvent(e)
	if err != nil {
		frame, _ = encodeEvent(Event{Type: "error", Data: errorBody{Error: "encode state: " + err.Error()}})
	}
	return frame
}

// encodeEvent makes the SSE frame "event: <type>\ndata: <json>\n\n".
// encoding/json never writes a raw newline, so the data is one line.
func encodeEvent(e Event) ([]byte, error) {
	if e.Type == "" || strings.ContainsAny(e.Type, "\r\n: ") {
		return nil, errors.New("bad event type")
	}
	data, err := json.Marshal(e.Data)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(len(e.Type) + len(data) + 16)
	buf.WriteString("event: ")
	buf.WriteString(e.Type)
	buf.WriteString("\ndata: ")
	buf.Write(data)
	buf.WriteString("\n\n")
	return buf.Bytes(), nil
}

// getEvents streams events: the current state at once, then whatever is
// published, until the client goes or the server stops.
func (s *Server) getEvents(c *gin.Context) {
	sub, err := s.events.subscribe()
	if err != nil {
		abortJSON(c, http.StatusServiceUnavailable, err.Error())
		return
	}
	defer s.events.unsubscribe(sub)

	ctx := c.Request.Context()
	w := c.Writer
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	w.WriteHeaderNow()

	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) //nolint:errcheck // best effort, as below
	write := func(frame []byte) error {
		// Not supported by every ResponseWriter (httptest); then the
		// request context is the only way out.
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := w.Write(frame); err != nil {
			return err
		}
		w.Flush()
		return nil
	}

	if err := write([]byte("retry: " + strconv.Itoa(reconnectMS) + "\n\n")); err != nil {
		return
	}
	if err := write(stateFrame(ctx, s.lab, s.events.period)); err != nil {
		return
	}
	beat := time.NewTicker(heartbeatPeriod)
	defer beat.Stop()
	for {
		var frame []byte
		select {
		case <-ctx.Done():
			return
		case frame = <-sub.frames:
		case <-beat.C:
			frame = []byte(": ping\n\n")
		}
		if err := write(frame); err != nil {
			return
		}
	}
}
