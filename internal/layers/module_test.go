package layers

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestTheLibraryAloneBringsOnlyItsNeeds builds an outsider's module that
// imports only handoff, as `go get github.com/sockshift/sockshift/handoff`
// makes one (here from the copy in this tree, offline), and checks that its
// module graph holds none of the demo's dependencies.
func TestTheLibraryAloneBringsOnlyItsNeeds(t *testing.T) {
	lib, err := filepath.Abs("../../handoff")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/outsider\n\ngo 1.26.8\n\nrequire github.com/sockshift/sockshift/handoff v0.0.0\n\n" +
			"replace github.com/sockshift/sockshift/handoff => " + lib + "\n",
		"main.go": "package main\n\nimport (\n\t\"fmt\"\n\n\t\"github.com/sockshift/sockshift/handoff\"\n)\n\n" +
			"func main() { fmt.Println(handoff.Steps()) }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := os.ReadFile(filepath.Join(lib, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	goTool := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		// Offline, from the module cache the tree's own build filled.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOSUMDB=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	goTool("mod", "tidy")
	goTool("build", "./...")
	mods := goTool("list", "-m", "all")
	for _, bad := range []string{"gin-gonic", "chromedp", "quic-go", "mongodb", "protobuf", "gopacket", "github.com/sockshift/sockshift "} {
		if strings.Contains(mods, bad) {
			t.Errorf("an outsider's module that imports only handoff needs %s:\n%s", bad, mods)
		}
	}
	if !strings.Contains(mods, "golang.org/x/sys") || !strings.Contains(mods, "github.com/vishvananda/netlink") {
		t.Errorf("the module graph lacks the library's own dependencies:\n%s", mods)
	}
	t.Logf("an outsider's go list -m all:\n%s", mods)
}
