package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sockshift/sockshift"

// rules: packages under a prefix, and what they must never depend on.
var rules = []struct {
	under     string
	forbidden []string
}{
	{module + "/handoff", []string{module + "/demo", module + "/web", "github.com/gin-gonic/gin", "net/http"}},
	{module + "/web", []string{module + "/handoff", module + "/demo"}},
	{module + "/internal", []string{module + "/handoff", module + "/demo", module + "/web"}},
	// The server process links the library and its services, not the
	// console: web would bring gin and its dependencies into every node.
	{module + "/demo/node", []string{module + "/web", "github.com/gin-gonic/gin"}},
	{module + "/demo/echo", []string{module + "/web", "github.com/gin-gonic/gin", "net/http"}},
	{module + "/demo/count", []string{module + "/web", "github.com/gin-gonic/gin", "net/http"}},
}

// TestImportsPointDown lists every package's dependencies with the go tool
// (as `go list -deps` shows them) and fails on any that points up.
func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		for _, r := range rules {
			if pkg != r.under && !strings.HasPrefix(pkg, r.under+"/") {
				continue
			}
			checked++
			for _, d := range deps {
				for _, f := range r.forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s depends on %s", pkg, d)
					}
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked only %d packages: the listing is wrong", checked)
	}
}
