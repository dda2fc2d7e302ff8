package wire

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
)

// maxKeyFile bounds what LoadKeyFile reads: 64 hex digits and some space.
const maxKeyFile = 1024

// GenerateKeyFile makes a new shared key of KeySize random bytes, writes it
// hex-encoded (one line) to a new file at path with mode 0600, and returns
// it. It refuses to overwrite an existing file.
func GenerateKeyFile(path string) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(rand.Reader, key); err != nil {
		return nil, fmt.Errorf("wire: generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("wire: generate key: %s already exists; not overwriting a key (remove it first to replace it): %w", path, err)
		}
		return nil, fmt.Errorf("wire: generate key: %w", err)
	}
	// Chmod too: the mode given to OpenFile is reduced by the umask only,
	// but state it explicitly rather than trust the platform.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // never leave a half-written key behind
		return nil, fmt.Errorf("wire: generate key: writing %s: %w", path, err)
	}
	return key, nil
}

// LoadKeyFile reads a shared key written by GenerateKeyFile: KeySize bytes,
// hex-encoded, surrounding white space ignored. The file must not be
// accessible by group or others (chmod 600).
func LoadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("wire: load key: %s does not exist (make one with GenerateKeyFile): %w", path, err)
		}
		return nil, fmt.Errorf("wire: load key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat() // of the opened file, so a swap after the check cannot matter
	if err != nil {
		return nil, fmt.Errorf("wire: load key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("wire: load key: %s is not a regular file (%v)", path, fi.Mode().Type())
	}
	// Windows has no such permission bits; its files report 0666.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("wire: load key: %s has mode %#o, readable or writable by group or others; run chmod 600 %s", path, perm, path)
	}
	raw, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("wire: load key: reading %s: %w", path, err)
	}
	if len(raw) > maxKeyFile {
		return nil, fmt.Errorf("wire: load key: %s is larger than %d bytes; want %d hex digits", path, maxKeyFile, 2*KeySize)
	}
	text := bytes.TrimSpace(raw)
	for i, c := range text {
		if !isHexDigit(c) {
			return nil, fmt.Errorf("wire: load key: %s: byte %d (%q) is not a hex digit; want %d hex digits", path, i, c, 2*KeySize)
		}
	}
	if len(text) != 2*KeySize {
		return nil, fmt.Errorf("wire: load key: %s holds %d hex digits, want %d (a %d-byte key)", path, len(text), 2*KeySize, KeySize)
	}
	key := make([]byte, KeySize)
	if _, err := hex.Decode(key, text); err != nil {
		return nil, fmt.Errorf("wire: load key: %s: %w", path, err)
	}
	return key, nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
