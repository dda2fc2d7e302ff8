package flagfile

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// ConfigFlag is the name of the flag that names the file.
const ConfigFlag = "config"

// maxFile bounds what is read: a config file is a few hundred bytes.
const maxFile = 64 << 10

// Parse defines --config on fs (unless fs has it already), parses args,
// and then, if --config was given, sets from the file every flag that args
// did not set.
func Parse(fs *flag.FlagSet, args []string) error {
	if fs.Lookup(ConfigFlag) == nil {
		fs.String(ConfigFlag, "", "read flags from this file (name = value lines); the command line overrides it")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := fs.Lookup(ConfigFlag).Value.String()
	if path == "" {
		return nil
	}
	return Apply(fs, path)
}

// Apply sets from the file at path every flag of fs that was not set on
// the command line (fs must have been parsed).
func Apply(fs *flag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if len(b) > maxFile {
		return fmt.Errorf("config %s: larger than %d bytes", path, maxFile)
	}
	values, err := Read(b)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	for _, v := range values {
		if fs.Lookup(v.Name) == nil {
			return fmt.Errorf("config %s:%d: unknown setting %q", path, v.Line, v.Name)
		}
		if onCommandLine[v.Name] {
			continue
		}
		if err := fs.Set(v.Name, v.Value); err != nil {
			return fmt.Errorf("config %s:%d: %s: %w", path, v.Line, v.Name, err)
		}
	}
	return nil
}

// Setting is one `name = value` line.
type Setting struct {
	Name, Value string
	Line        int
}

// Read parses the file's content.
func Read(b []byte) ([]Setting, error) {
	var out []Setting
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("line %d: want name = value, got %q", n, line)
		}
		if name == ConfigFlag {
			return nil, fmt.Errorf("line %d: a config file cannot name another", n)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("line %d: %s already set on line %d", n, name, prev)
		}
		seen[name] = n
		if strings.HasPrefix(value, `"`) {
			uq, err := strconv.Unquote(value)
			if err != nil {
				return nil, fmt.Errorf("line %d: %s: bad quoted value: %w", n, name, err)
			}
			value = uq
		}
		out = append(out, Setting{Name: name, Value: value, Line: n})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, errors.New("a line is too long")
		}
		return nil, err
	}
	return out, nil
}
