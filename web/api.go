package web

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// maxHandOffBody bounds the POST /api/handoff and /api/step bodies: a
// few short fields.
const maxHandOffBody = 4 << 10

// routes builds the gin engine: the API, the event stream and the page.
func (s *Server) routes() (http.Handler, error) {
	quietGin()
	r := gin.New()
	// Exact routes only: /api/state/ is unknown, not a redirect.
	r.RedirectTrailingSlash = false
	r.HandleMethodNotAllowed = true
	// No proxy is trusted: the console never uses the client's address.
	if err := r.SetTrustedProxies(nil); err != nil {
		return nil, fmt.Errorf("web: routes: %w", err)
	}
	// Quiet recovery: a panicking handler answers 500, nothing is printed.
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, _ any) {
		abortJSON(c, http.StatusInternalServerError, "internal error")
	}))
	r.Use(func(c *gin.Context) {
		c.Header("X-Content-Type-Options", "nosniff")
		c.Next()
	})
	r.NoRoute(func(c *gin.Context) { abortJSON(c, http.StatusNotFound, "no such route") })
	r.NoMethod(func(c *gin.Context) { abortJSON(c, http.StatusMethodNotAllowed, "method not allowed") })

	r.GET("/api/state", s.getState)
	r.POST("/api/handoff", s.guardPost, s.postHandOff)
	r.POST("/api/step", s.guardPost, s.postStep)
	r.GET("/api/handoffs/:file", s.getHandOffFile)
	r.GET("/api/events", s.getEvents)
	if err := s.pageRoutes(r); err != nil {
		return nil, err
	}
	return r, nil
}

type errorBody struct {
	Error string `json:"error"`
}

func abortJSON(c *gin.Context, code int, msg string) {
	c.AbortWithStatusJSON(code, errorBody{Error: msg})
}

func (s *Server) getState(c *gin.Context) {
	st, err := s.lab.State(c.Request.Context())
	if err != nil {
		abortJSON(c, http.StatusInternalServerError, "lab state: "+err.Error())
		return
	}
	c.JSON(http.StatusOK, normalizeState(st, s.lab))
}

// normalizeState turns nil lists into empty ones, so clients always see
// arrays, never null, and says what the console offers with lab.
func normalizeState(st State, lab Lab) State {
	if st.Nodes == nil {
		st.Nodes = []Node{}
	}
	if st.Connections == nil {
		st.Connections = []Connection{}
	}
	if st.Services == nil {
		st.Services = []Service{}
	}
	if st.Step != nil {
		if st.Step.Done == nil {
			st.Step.Done = []string{}
		}
		if st.Step.Phases == nil {
			st.Step.Phases = []string{}
		}
	}
	_, st.Features.Step = lab.(Classroom)
	_, st.Features.Capture = lab.(Recorder)
	return st
}

// guardPost lets a state-changing request through only if it is
// authorized: with a token, by the bearer token; without one (loopback
// console), only from a page of this console, never from another site
// through the operator's browser.
func (s *Server) guardPost(c *gin.Context) {
	if s.token != "" {
		if !validBearer(c.GetHeader("Authorization"), s.token) {
			c.Header("WWW-Authenticate", `Bearer realm="sockshift"`)
			abortJSON(c, http.StatusUnauthorized, "a valid bearer token is required")
		}
		return
	}
	host, _, err := net.SplitHostPort(c.Request.Host)
	if err != nil {
		host = c.Request.Host
	}
	// A foreign Host name means the request came through a name that was
	// pointed at this loopback console (DNS rebinding).
	if !isLoopbackHost(strings.Trim(host, "[]")) {
		abortJSON(c, http.StatusForbidden, "requests must address the console by a loopback address")
		return
	}
	if origin := c.GetHeader("Origin"); origin != "" && !sameOrigin(origin, c.Request.Host) {
		abortJSON(c, http.StatusForbidden, "cross-origin requests are refused")
		return
	}
}

func validBearer(header, token string) bool {
	const prefix = "bearer "
	if len(header) < len(prefix) || !strings.EqualFold(header[:len(prefix)], prefix) {
		return false
	}
	got := strings.TrimSpace(header[len(prefix):])
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && strings.EqualFold(u.Host, host)
}

// serverName is what a server's name looks like.
var serverName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// errBusy is the answer to a hand-off requested while one runs.
const errBusy = "a hand-off is already running"

type busyBody struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// acceptedBody answers a step-mode hand-off: it runs on, one POST
// /api/step at a time.
type acceptedBody struct {
	Accepted bool       `json:"accepted"`
	Step     *StepState `json:"step"`
}

func (s *Server) postHandOff(c *gin.Context) {
	req, err := readJSONBody[HandOffRequest](c, maxHandOffBody)
	if err != nil {
		abortBody(c, err)
		return
	}
	if req.To != "" && !serverName.MatchString(req.To) {
		// Which servers there are is the lab's to say (ErrBadRequest).
		abortJSON(c, http.StatusBadRequest, fmt.Sprintf(`bad "to" %q: want a server's name ("a", "b", ...) or ""`, req.To))
		return
	}
	if req.Break != nil && !req.Break.SkipAnnounce && !req.Break.KeepVIP {
		req.Break = nil
	}
	classroom, ok := s.lab.(Classroom)
	if (req.Step || req.Break != nil) && !ok {
		abortJSON(c, http.StatusBadRequest, "this lab has no step mode and no break-it toggles")
		return
	}
	if req.Services != nil {
		if msg := s.checkServices(c.Request.Context(), req.Services, ok); msg != "" {
			abortJSON(c, http.StatusBadRequest, msg)
			return
		}
	}
	if !s.handingOff.CompareAndSwap(false, true) {
		c.AbortWithStatusJSON(http.StatusConflict, busyBody{Error: errBusy})
		return
	}
	if req.Step {
		s.startStepHandOff(c, classroom, req)
		return
	}
	defer s.handingOff.Store(false)

	ctx, done := handOffContext(s.freeOnSwitched(c.Request.Context()))
	var rep Report
	if req.Break != nil || req.Services != nil {
		rep, err = classroom.HandOffWith(ctx, req)
	} else {
		rep, err = s.lab.HandOff(ctx, req.To)
	}
	done()
	if errors.Is(err, ErrBadRequest) {
		// Nothing ran: no report to keep or push.
		c.JSON(http.StatusBadRequest, busyBody{Error: err.Error()})
		return
	}
	rep = s.finishHandOff(rep, err)
	code := http.StatusOK
	if !rep.OK {
		code = http.StatusBadGateway
	}
	c.JSON(code, rep)
}

// checkServices says what is wrong with a selection of services, or "".
func (s *Server) checkServices(ctx context.Context, names []string, classroom bool) string {
	st, err := s.lab.State(ctx)
	if err != nil {
		return "lab state: " + err.Error()
	}
	var have []string
	for _, sv := range st.Services {
		have = append(have, sv.Name)
	}
	list := strings.Join(have, ", ")
	if len(names) == 0 {
		return fmt.Sprintf(`empty "services": name one or more of: %s (or leave it out to move every service)`, list)
	}
	for _, n := range names {
		if !slices.Contains(have, n) {
			return fmt.Sprintf(`unknown service %q in "services": this lab has %s`, n, list)
		}
	}
	if !classroom {
		return "this lab hands off every service at once"
	}
	return ""
}

// switchedKey carries the function that frees the console for the next
// hand-off once the switch itself is over (see Switched).
type switchedKey struct{}

// freeOnSwitched returns ctx for a hand-off the lab runs: when the lab
// calls Switched, the next hand-off may start while this one's report
// (the capture, the fate of each frame) is still being written.
func (s *Server) freeOnSwitched(ctx context.Context) context.Context {
	return context.WithValue(ctx, switchedKey{}, func() { s.handingOff.Store(false) })
}

// Switched tells the console, from inside Lab.HandOff or
// Classroom.HandOffWith, that the servers are done with the hand-off: no
// 409 for the next one while the report is still being made.
func Switched(ctx context.Context) {
	if free, ok := ctx.Value(switchedKey{}).(func()); ok {
		free()
	}
}

// finishHandOff completes a report and pushes it, with the new state.
func (s *Server) finishHandOff(rep Report, err error) Report {
	if rep.Phases == nil {
		rep.Phases = []Phase{}
	}
	if rep.Services == nil {
		rep.Services = []string{}
	}
	if rep.Addresses == nil {
		rep.Addresses = []string{}
	}
	if rep.Stayed == nil {
		rep.Stayed = []Stayed{}
	}
	if err != nil {
		rep.OK = false
		if rep.Error == "" {
			rep.Error = err.Error()
		}
	} else if !rep.OK && rep.Error == "" {
		rep.Error = "hand-off failed"
	}
	s.latest.Store(&rep)
	s.Publish(Event{Type: "handoff", Data: rep})
	s.events.pollNow() // show where the connections are now, not in 500 ms
	return rep
}

// stepSettle bounds how long the console waits for a step-mode hand-off
// to reach its next phase before it answers; the state events follow
// anyway.
const stepSettle = 3 * time.Second

// maxStepHandOff ends a step-mode hand-off that nobody finishes (it rolls
// back if it had not passed the point of no return).
const maxStepHandOff = 30 * time.Minute

// startStepHandOff runs a step-mode hand-off in the background and
// answers 202 once its first phase waits (or it ended).
func (s *Server) startStepHandOff(c *gin.Context, lab Classroom, req HandOffRequest) {
	ctx, done := stepContext(s.freeOnSwitched(c.Request.Context()))
	finished := make(chan struct{})
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer close(finished)
		rep, err := lab.HandOffWith(ctx, req)
		done()
		rep.Step = true
		// Free before the report goes out: whoever sees it may start the
		// next hand-off at once.
		s.handingOff.Store(false)
		s.finishHandOff(rep, err)
	}()
	st := s.settleStep(c.Request.Context(), "", finished)
	s.events.pollNow()
	c.JSON(http.StatusAccepted, acceptedBody{Accepted: true, Step: st})
}

// settleStep waits until the lab's step state shows a phase waiting other
// than released, or finished closes, and returns the last state seen.
func (s *Server) settleStep(ctx context.Context, released string, finished <-chan struct{}) *StepState {
	deadline := time.Now().Add(stepSettle)
	var last *StepState
	for {
		if st, err := s.lab.State(ctx); err == nil {
			last = normalizeState(st, s.lab).Step
			if last != nil && last.Waiting != "" && last.Waiting != released {
				return last
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return last
		}
		select {
		case <-finished:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stepRequest is the body of POST /api/step.
type stepRequest struct {
	Abort bool `json:"abort"`
}

// stepBody answers POST /api/step.
type stepBody struct {
	Phase string     `json:"phase"` // the phase released (or aborted at)
	Abort bool       `json:"abort,omitempty"`
	Step  *StepState `json:"step"` // where the hand-off stands now; null when it ended
}

func (s *Server) postStep(c *gin.Context) {
	lab, ok := s.lab.(Classroom)
	if !ok {
		abortJSON(c, http.StatusNotFound, "this lab has no step mode")
		return
	}
	req, err := readJSONBody[stepRequest](c, maxHandOffBody)
	if err != nil {
		abortBody(c, err)
		return
	}
	phase, err := lab.Step(c.Request.Context(), req.Abort)
	if err != nil {
		abortJSON(c, http.StatusConflict, err.Error())
		return
	}
	var st *StepState
	if !req.Abort {
		st = s.settleStep(c.Request.Context(), phase, nil)
	}
	s.events.pollNow()
	c.JSON(http.StatusOK, stepBody{Phase: phase, Abort: req.Abort, Step: st})
}

// handOffFiles are the files GET /api/handoffs/<name> serves, with the
// name a download gets.
var handOffFiles = map[string]string{
	"latest.pcap": "sockshift-handoff.pcap",
	"latest.svg":  "",
}

func (s *Server) getHandOffFile(c *gin.Context) {
	name := c.Param("file")
	if name == "latest.json" {
		s.getLatestReport(c)
		return
	}
	download, known := handOffFiles[name]
	rec, ok := s.lab.(Recorder)
	if !known || !ok {
		abortJSON(c, http.StatusNotFound, "no such file")
		return
	}
	data, contentType, err := rec.HandOffFile(c.Request.Context(), name)
	if errors.Is(err, ErrNoFile) {
		abortJSON(c, http.StatusNotFound, "no hand-off recorded yet")
		return
	}
	if err != nil {
		abortJSON(c, http.StatusInternalServerError, err.Error())
		return
	}
	c.Header("Cache-Control", "no-cache")
	if download != "" {
		c.Header("Content-Disposition", `attachment; filename="`+download+`"`)
	} else {
		// An SVG is shown as an image of the page, never run as a document.
		c.Header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	}
	c.Data(http.StatusOK, contentType, data)
}

// getLatestReport answers GET /api/handoffs/latest.json: the last
// hand-off's report, as its "handoff" event carried it, so a page loaded
// (or reloaded) after it shows it; 204 No Content before the first.
func (s *Server) getLatestReport(c *gin.Context) {
	rep := s.latest.Load()
	if rep == nil {
		// Not an error: a page loaded before any hand-off asks too.
		c.Status(http.StatusNoContent)
		return
	}
	c.Header("Cache-Control", "no-cache")
	c.JSON(http.StatusOK, rep)
}

// readJSONBody decodes a bounded body: empty (the zero value), or one JSON
// object with only T's fields.
func readJSONBody[T any](c *gin.Context, limit int64) (T, error) {
	var req T
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		return req, fmt.Errorf("read body: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return req, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("bad JSON body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errors.New("bad JSON body: trailing data after the object")
	}
	return req, nil
}

func abortBody(c *gin.Context, err error) {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		abortJSON(c, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	abortJSON(c, http.StatusBadRequest, err.Error())
}

// stepContext detaches a step-mode hand-off from the request that started
// it: it waits for later requests. It ends when Serve stops (the hand-off
// then rolls back or completes), or after maxStepHandOff.
func stepContext(req context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(req), maxStepHandOff)
	var stops []func() bool
	for _, key := range []any{serveKey{}, hardStopKey{}} {
		if parent, ok := req.Value(key).(context.Context); ok {
			stops = append(stops, context.AfterFunc(parent, cancel))
		}
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// handOffContext detaches a hand-off from its HTTP client: a browser that
// goes away must not abort a hand-off half way. It still ends when Serve
// gives up waiting at shutdown.
func handOffContext(req context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(req))
	hard, ok := req.Value(hardStopKey{}).(context.Context)
	if !ok {
		return ctx, cancel
	}
	stop := context.AfterFunc(hard, cancel)
	return ctx, func() { stop(); cancel() }
}
