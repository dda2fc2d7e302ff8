package web

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"
)

// static holds the page and its script and style: no CDN, nothing fetched
// from elsewhere, so the console works on an offline lab.
//
//go:embed static
var static embed.FS

// pageCSP lets the page load only its own script, style and API: even a
// mistaken external reference would be refused by the browser.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) pageRoutes(r *gin.Engine) error {
	assets := []struct{ route, file, contentType string }{
		{"/", "static/index.html", "text/html; charset=utf-8"},
		{"/assets/app.js", "static/app.js", "text/javascript; charset=utf-8"},
		{"/assets/app.css", "static/app.css", "text/css; charset=utf-8"},
	}
	for _, a := range assets {
		body, err := fs.ReadFile(static, a.file)
		if err != nil {
			return fmt.Errorf("web: embedded asset %s: %w", a.file, err)
		}
		ct := a.contentType
		r.GET(a.route, func(c *gin.Context) {
			c.Header("Content-Security-Policy", pageCSP)
			c.Header("Cache-Control", "no-cache")
			c.Header("Referrer-Policy", "no-referrer")
			c.Data(http.StatusOK, ct, body)
		})
	}
	return nil
}
