package flagfile

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newSet() (*flag.FlagSet, *string, *bool, *time.Duration) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	name := fs.String("name", "", "")
	hold := fs.Bool("hold", false, "")
	d := fs.Duration("timeout", time.Second, "")
	return fs, name, hold, d
}

func write(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.conf")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFileSetsAndCommandLineWins(t *testing.T) {
	p := write(t, "# comment\n\nname = a\nhold=true\n  timeout =  \"3s\"  \n")
	fs, name, hold, d := newSet()
	if err := Parse(fs, []string{"--config", p, "--name", "b"}); err != nil {
		t.Fatal(err)
	}
	if *name != "b" || !*hold || *d != 3*time.Second {
		t.Fatalf("name=%q hold=%v timeout=%v; want b true 3s", *name, *hold, *d)
	}
}

func TestNoConfigIsPlainParse(t *testing.T) {
	fs, name, _, _ := newSet()
	if err := Parse(fs, []string{"--name", "x"}); err != nil || *name != "x" {
		t.Fatalf("name=%q err=%v", *name, err)
	}
}

func TestBadFiles(t *testing.T) {
	for _, c := range []struct{ file, want string }{
		{"nope = 1\n", `:1: unknown setting "nope"`},
		{"name = a\nname = b\n", "line 2: name already set on line 1"},
		{"just words\n", "line 1: want name = value"},
		{"timeout = soon\n", ":1: timeout:"},
		{"config = /etc/x\n", "cannot name another"},
		{"name = \"unterminated\n", "bad quoted value"},
		{strings.Repeat("#", maxFile+1), "larger than"},
	} {
		fs, _, _, _ := newSet()
		err := Parse(fs, []string{"--config", write(t, c.file)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("file %.30q: got %v, want an error containing %q", c.file, err, c.want)
		}
	}
	fs, _, _, _ := newSet()
	if err := Parse(fs, []string{"--config", "/nonexistent/x.conf"}); err == nil {
		t.Error("a missing file: no error")
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte("a = b\n# c\n d=\"e f\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Read(b)
		if err != nil {
			return
		}
		for _, x := range s {
			if x.Name == "" || strings.ContainsAny(x.Name, " \t=") || x.Line < 1 {
				t.Fatalf("bad name %q", x.Name)
			}
		}
	})
}
