package deploy

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	dig := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		raw, repo   string
		wantVersion string
		wantErr     string
	}{
		{"ghcr.io/owner/app:sha-123", "ghcr.io/owner/app", "sha-123", ""},
		{"ghcr.io/owner/app@" + dig, "ghcr.io/owner/app", "abababababab", ""},
		{"ghcr.io/owner/app:v1@" + dig, "ghcr.io/owner/app", "v1", ""},
		{"mywebchat/app:dev", "docker.io/mywebchat/app", "dev", ""},
		{"ghcr.io/owner/app-evil:v1", "ghcr.io/owner/app", "", "not in the repository"},
		{"ghcr.io/owner/app", "ghcr.io/owner/app", "", "needs a tag or a digest"},
		{"ghcr.io/owner/app:v1 --rm", "ghcr.io/owner/app", "", "not an image reference"},
		{strings.Repeat("a", 600), "ghcr.io/owner/app", "", "not an image reference"},
	}
	for _, tt := range tests {
		t.Run(tt.raw[:min(len(tt.raw), 40)], func(t *testing.T) {
			r, err := parseRef(tt.raw, tt.repo)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseRef = %v, want ErrBadInput with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.version(dig); got != tt.wantVersion {
				t.Errorf("version = %q, want %q", got, tt.wantVersion)
			}
		})
	}
}

func TestResolvePrefersRegistryDigest(t *testing.T) {
	dig := "sha256:" + strings.Repeat("cd", 32)
	r, _ := parseRef("ghcr.io/owner/app:v1", "ghcr.io/owner/app")
	run, d := r.resolve("sha256:localid", []string{"other.io/x/y@sha256:" + strings.Repeat("ef", 32), "ghcr.io/owner/app@" + dig})
	if run != "ghcr.io/owner/app@"+dig || d != dig {
		t.Errorf("resolve = %q %q, want the repository's digest", run, d)
	}
	run, d = r.resolve("sha256:localid", nil)
	if run != "sha256:localid" || d != "sha256:localid" {
		t.Errorf("resolve without RepoDigests = %q %q, want the image ID", run, d)
	}
}
