package stack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckBinarySaysWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	exe := filepath.Join(dir, "kamal-proxy")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ bin, want string }{
		{"", "-kamal-proxy"},
		{filepath.Join(dir, "missing"), "no such file"},
		{dir, "not an executable file"},
		{plain, "not an executable file"},
	}
	for _, tt := range tests {
		err := CheckBinary(tt.bin)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckBinary(%q) = %v, want an error mentioning %q", tt.bin, err, tt.want)
		}
	}
	if err := CheckBinary(exe); err != nil {
		t.Errorf("CheckBinary(executable) = %v, want nil", err)
	}
}
