package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteIfChanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	steps := []struct {
		data        string
		wantChanged bool
	}{{"a", true}, {"a", false}, {"b", true}}
	for _, s := range steps {
		changed, err := WriteIfChanged(p, []byte(s.data), 0o640)
		if err != nil {
			t.Fatal(err)
		}
		if changed != s.wantChanged {
			t.Errorf("WriteIfChanged(%q) changed = %v, want %v", s.data, changed, s.wantChanged)
		}
		got, _ := os.ReadFile(p)
		if string(got) != s.data {
			t.Errorf("content = %q, want %q", got, s.data)
		}
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestWriteFileMissingDir(t *testing.T) {
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "f"), nil, 0o600); err == nil {
		t.Error("WriteFile into a missing folder succeeded")
	}
}
