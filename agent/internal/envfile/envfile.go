// Package envfile reads the KEY=VALUE files that app.env_file names: one variable a line, blank
// lines and # comments skipped, an optional leading "export ". Errors quote line numbers, never
// values, since values may be secrets.
package envfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxBytes bounds a file: an env file is small, and a huge one is a mistake.
const MaxBytes = 64 << 10

// Read parses the file at path. A missing file is an error that wraps fs.ErrNotExist.
func Read(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("app.env_file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, MaxBytes+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("app.env_file %s: %w", path, err)
	}
	if n > MaxBytes {
		return nil, fmt.Errorf("app.env_file %s: larger than %d bytes", path, MaxBytes)
	}
	return Parse(path, buf[:n])
}

// Parse parses the contents b of the file named path (used in errors only).
func Parse(path string, b []byte) (map[string]string, error) {
	env := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			// Quote only the line number: values may be secrets.
			return nil, fmt.Errorf("app.env_file %s: line %d is not KEY=VALUE", path, i+1)
		}
		env[k] = v
	}
	return env, nil
}
