package node

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/sockshift/sockshift/handoff/wire"
)

// A node's control API is a Unix socket (the one-host lab: the file's mode
// keeps others out) or TCP on the server's own address (the VM lab, where
// the console runs on another machine). Over TCP every request must carry
// the control token, derived from the lab's shared key: whoever holds the
// key may drive the nodes, and the token alone cannot speak on the
// hand-off channel.

// controlTokenLabel separates the token from every other use of the key.
const controlTokenLabel = "sockshift control API token v1"

// ControlToken is the bearer token of a node's TCP control API for the
// lab's shared key: HMAC-SHA256(key, label), hex.
func ControlToken(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(controlTokenLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// ControlTokenFromKeyFile loads the lab's key and derives the control token.
func ControlTokenFromKeyFile(path string) (string, error) {
	key, err := wire.LoadKeyFile(path)
	if err != nil {
		return "", fmt.Errorf("control token: %w", err)
	}
	return ControlToken(key), nil
}

// isUnixControl reports whether a --control value is a Unix socket path.
func isUnixControl(where string) bool { return strings.Contains(where, "/") }

// checkControl refuses a TCP control address that anyone on the network
// could reach: it must be this server's own address or loopback.
func checkControl(where string, own netip.Addr) error {
	if isUnixControl(where) {
		return nil
	}
	host, _, err := net.SplitHostPort(where)
	if err != nil {
		return fmt.Errorf("node: --control %q: want a Unix socket path or host:port: %w", where, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !(ip == own || ip.IsLoopback()) {
		return fmt.Errorf("node: --control %q: a TCP control API listens on this server's own address (%s) or loopback, never on every address", where, own)
	}
	return nil
}

// requireToken refuses every request without "Authorization: Bearer
// <token>" with 401.
func requireToken(token string, h http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sockshift node"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "the control API needs the lab's control token (Authorization: Bearer ...)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}
