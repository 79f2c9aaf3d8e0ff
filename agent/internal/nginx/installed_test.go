package nginx

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mywebchat/mywebchat/agent/internal/atomicfile"
)

// includeTest fails like nginx -t does when the included upstream file is missing or defines no
// upstream chat.
func includeTest(path string) func(context.Context) error {
	return func(context.Context) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf(`[emerg] open() "%s" failed: %w`, path, err)
		}
		if !strings.Contains(string(b), "upstream chat") {
			return errors.New("[emerg] no upstream chat")
		}
		return nil
	}
}

func TestTestInstalledOnAFreshHost(t *testing.T) {
	placeholder := []byte("upstream chat {\n    server 127.0.0.1:1;\n}\n")
	t.Run("no upstream file yet: a stand-in during the test, nothing left after", func(t *testing.T) {
		state := filepath.Join(t.TempDir(), "state")
		out := filepath.Join(state, "nginx", "upstream.conf")
		c := &Controller{Output: out, Test: includeTest(out)}
		if err := c.TestInstalled(t.Context(), placeholder); err != nil {
			t.Fatalf("fresh host: %v", err)
		}
		if _, err := os.Stat(state); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after the test: %s exists (%v), want the host left as it was", state, err)
		}
	})
	t.Run("the installed file is tested as it is", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "upstream.conf")
		if err := os.WriteFile(out, []byte("broken"), 0o644); err != nil {
			t.Fatal(err)
		}
		c := &Controller{Output: out, Test: includeTest(out)}
		if err := c.TestInstalled(t.Context(), placeholder); err == nil {
			t.Error("a broken installed file passed")
		}
		if b, _ := os.ReadFile(out); string(b) != "broken" {
			t.Errorf("installed file changed to %q", b)
		}
	})
	t.Run("a file the agent wrote during the test stays", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "upstream.conf")
		c := &Controller{Output: out, Test: func(ctx context.Context) error {
			return atomicfile.WriteFile(out, placeholder, 0o644) // `run` starting meanwhile
		}}
		if err := c.TestInstalled(t.Context(), placeholder); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(out); err != nil || string(b) != string(placeholder) {
			t.Errorf("the agent's file: %q (%v), want it kept", b, err)
		}
	})
}
