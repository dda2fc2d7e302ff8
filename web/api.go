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
	"strings"

	"github.com/gin-gonic/gin"
)

// maxHandOffBody bounds the POST /api/handoff body: it is {"to":"b"} at most.
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
	c.JSON(http.StatusOK, normalizeState(st))
}

// normalizeState turns nil lists into empty ones, so clients always see
// arrays, never null.
func normalizeState(st State) State {
	if st.Nodes == nil {
		st.Nodes = []Node{}
	}
	if st.Connections == nil {
		st.Connections = []Connection{}
	}
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

type handOffRequest struct {
	To string `json:"to"`
}

// errBusy is the answer to a hand-off requested while one runs.
const errBusy = "a hand-off is already running"

type busyBody struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

func (s *Server) postHandOff(c *gin.Context) {
	req, err := readHandOffRequest(c)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			abortJSON(c, http.StatusRequestEntityTooLarge, err.Error())
			return
		}
		abortJSON(c, http.StatusBadRequest, err.Error())
		return
	}
	switch req.To {
	case "", "a", "b":
	default:
		abortJSON(c, http.StatusBadRequest, fmt.Sprintf(`bad "to" %q: want "a", "b" or ""`, req.To))
		return
	}
	if !s.handingOff.CompareAndSwap(false, true) {
		c.AbortWithStatusJSON(http.StatusConflict, busyBody{Error: errBusy})
		return
	}
	defer s.handingOff.Store(false)

	ctx, done := handOffContext(c.Request.Context())
	rep, err := s.lab.HandOff(ctx, req.To)
	done()
	if rep.Phases == nil {
		rep.Phases = []Phase{}
	}
	if err != nil {
		rep.OK = false
		if rep.Error == "" {
			rep.Error = err.Error()
		}
	} else if !rep.OK && rep.Error == "" {
		rep.Error = "hand-off failed"
	}
	s.Publish(Event{Type: "handoff", Data: rep})
	s.events.pollNow() // show where the connections are now, not in 500 ms
	code := http.StatusOK
	if !rep.OK {
		code = http.StatusBadGateway
	}
	c.JSON(code, rep)
}

// readHandOffRequest decodes the body: empty, or one JSON object with at
// most the field "to".
func readHandOffRequest(c *gin.Context) (handOffRequest, error) {
	var req handOffRequest
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxHandOffBody))
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
