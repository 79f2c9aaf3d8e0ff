package envfile

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "empty", in: "", want: map[string]string{}},
		{name: "comments and blanks", in: "# c\n\n  \nA=1\n", want: map[string]string{"A": "1"}},
		{name: "export and spaces", in: "export A=x y\n  B = 2\n", wantErr: "line 2 is not KEY=VALUE"},
		{name: "export prefix", in: "export A=x y\nB==2\n", want: map[string]string{"A": "x y", "B": "=2"}},
		{name: "last wins", in: "A=1\nA=2", want: map[string]string{"A": "2"}},
		{name: "empty value", in: "A=", want: map[string]string{"A": ""}},
		{name: "no equals", in: "A=1\nSECRETVALUE\n", wantErr: "line 2 is not KEY=VALUE"},
		{name: "empty key", in: "=v", wantErr: "line 1 is not KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("/etc/app.env", []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %v, %v; want error with %q", got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "SECRETVALUE") {
					t.Errorf("error %q quotes a value", err)
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Fatalf("Parse = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("ok", func(t *testing.T) {
		got, err := Read(write("ok.env", "A=1\n"))
		if err != nil || got["A"] != "1" {
			t.Fatalf("Read = %v, %v; want A=1", got, err)
		}
	})
	t.Run("exactly the limit", func(t *testing.T) {
		body := "A=" + strings.Repeat("x", MaxBytes-2)
		if got, err := Read(write("limit.env", body)); err != nil || len(got["A"]) != MaxBytes-2 {
			t.Fatalf("Read of %d bytes: %v", MaxBytes, err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		_, err := Read(write("big.env", "A="+strings.Repeat("x", MaxBytes)))
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("Read = %v, want a size error", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := Read(filepath.Join(dir, "nope.env")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Read = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("unreadable is an error, not an empty file", func(t *testing.T) {
		// A folder opens but cannot be read: the error must surface instead of deploying
		// silently without the file's variables.
		got, err := Read(dir)
		if err == nil {
			t.Fatalf("Read(folder) = %v, nil; want a read error", got)
		}
	})
}
