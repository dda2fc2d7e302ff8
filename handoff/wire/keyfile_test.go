package wire

import (
	"bytes"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	key, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != KeySize || bytes.Equal(key, make([]byte, KeySize)) {
		t.Fatalf("key %x", key)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %#o, want 0600", perm)
	}
	got, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, key) {
		t.Fatalf("loaded %x, generated %x", got, key)
	}
	// Two keys are different.
	other, err := GenerateKeyFile(path + "2")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other, key) {
		t.Fatal("two generated keys are equal")
	}
	// The loaded key works for a channel.
	cp, sp := net.Pipe()
	_, _, cerr, serr := runHandshake(cp, sp, got, key, nil, false)
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
}

func TestGenerateKeyFileRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKeyFile(path); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("got %v, want an already-exists error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious\n" {
		t.Fatalf("file changed: %q", b)
	}
}

func TestLoadKeyFileErrors(t *testing.T) {
	dir := t.TempDir()
	good := strings.Repeat("0123456789abcdef", 4)
	for _, tc := range []struct {
		name    string
		content string
		mode    fs.FileMode
		want    string
	}{
		{"group readable", good, 0o640, "chmod 600"},
		{"world readable", good, 0o604, "chmod 600"},
		{"group writable", good, 0o620, "chmod 600"},
		{"empty", "", 0o600, "holds 0 hex digits"},
		{"short", good[:62], 0o600, "holds 62 hex digits"},
		{"long", good + "00", 0o600, "holds 66 hex digits"},
		{"odd", good[:63], 0o600, "holds 63 hex digits"},
		{"bad hex", "zz" + good[2:], 0o600, "not a hex digit"},
		{"two keys", good + "\n" + good, 0o600, "not a hex digit"},
		{"raw bytes", string(testKey(1)), 0o600, "not a hex digit"},
		{"huge", strings.Repeat("0", 5000), 0o600, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			key, err := LoadKeyFile(path)
			if err == nil || key != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %x, %v; want an error containing %q", key, err, tc.want)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := LoadKeyFile(filepath.Join(dir, "nope"))
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		sub := filepath.Join(dir, "sub")
		os.Mkdir(sub, 0o700)
		if _, err := LoadKeyFile(sub); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("white space and upper case", func(t *testing.T) {
		path := filepath.Join(dir, "spaced")
		os.WriteFile(path, []byte("  "+strings.ToUpper(good)+"\r\n"), 0o600)
		key, err := LoadKeyFile(path)
		if err != nil || key[0] != 0x01 || key[31] != 0xef {
			t.Fatalf("got %x, %v", key, err)
		}
	})
}
