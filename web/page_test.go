package web

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestPage(t *testing.T) {
	_, ts := newTestServer(t, Config{Lab: &fakeLab{state: sampleState()}})
	r := do(t, http.MethodGet, ts.URL+"/", "", nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET /: %d", r.code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	page := string(r.body)
	if !regexp.MustCompile(`<button id="handoff"[^>]*>Hand off</button>`).MatchString(page) {
		t.Error(`page has no "Hand off" button`)
	}
	csp := r.header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// Every asset the page references is local and served.
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("page references %d assets, want the script and the style", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		if ref == "data:," {
			continue
		}
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("page references %q: not a local path", ref)
			continue
		}
		if a := do(t, http.MethodGet, ts.URL+ref, "", nil); a.code != http.StatusOK || len(a.body) == 0 {
			t.Errorf("GET %s: %d", ref, a.code)
		}
	}
	js := do(t, http.MethodGet, ts.URL+"/assets/app.js", "", nil)
	for _, want := range []string{`"/api/events"`, `"/api/handoff"`, "EventSource"} {
		if !strings.Contains(string(js.body), want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
}

func TestEmbeddedAssetsHaveNoExternalReference(t *testing.T) {
	// Any scheme-qualified or protocol-relative URL would make the page
	// reach beyond the console (CDN, fonts): none is allowed.
	external := regexp.MustCompile(`(?i)(https?:|wss?:|ftp:)//|(src|href|action)\s*=\s*["']?//|url\(\s*["']?//|@import|<iframe|new\s+WebSocket`)
	n := 0
	err := fs.WalkDir(static, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(static, path)
		if err != nil {
			return err
		}
		if loc := external.FindIndex(b); loc != nil {
			t.Errorf("%s: external reference %q", path, b[loc[0]:min(len(b), loc[1]+40)])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("walked %d embedded files, want the page, script and style", n)
	}
}
