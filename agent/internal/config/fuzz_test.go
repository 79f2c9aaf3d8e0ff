package config

import (
	"errors"
	"testing"
)

// FuzzParse: any bytes either parse into a config that passes Validate or fail with ErrInvalid;
// never a panic or an unwrapped error.
func FuzzParse(f *testing.F) {
	f.Add([]byte("app: {repository: example.com/a/b}\n"))
	f.Add([]byte("app:\n  repository: x/y\n  health: {interval: 1ms}\n"))
	f.Add([]byte("state_dir: [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that Validate rejects: %v", err)
		}
	})
}
