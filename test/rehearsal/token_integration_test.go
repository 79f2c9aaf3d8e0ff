//go:build integration

package rehearsal

import (
	"strings"
	"testing"
)

// tokenParam is the SecureString with the GHCR pull token (install.sh's default).
const tokenParam = "/mywebchat/ghcr-pull-token"

// credentials is what docker (and the agent) get for ghcr.io on h.
func (h *host) credentials() (string, error) {
	out, err := h.execErr("printf 'ghcr.io\\n' | docker-credential-mywebchat-ssm get")
	return strings.TrimSpace(out), err
}

// hostFiles is a fingerprint of everything on h that holds or locates
// registry credentials: a rotation must leave it as it is.
func (h *host) hostFiles() string {
	return h.exec("find /etc/mywebchat /etc/deploy-agent /root/.docker /usr/local/bin/docker-credential-mywebchat-ssm " +
		"-type f -exec sha256sum {} + | sort -k2 && ls -la --time-style=full-iso /etc/mywebchat /etc/deploy-agent /root/.docker")
}

// tokenRotation: a host set up for a private repository (install.sh with
// GHCR_TOKEN_PARAM) gets the token from Parameter Store for every pull, so
// one put-parameter --overwrite rotates it: the next credential lookup on
// the host returns the new secret, and nothing on the host changed.
func (w *world) tokenRotation(t *testing.T) {
	h := w.hosts[0]
	const oldToken, newToken = "ghp_rehearsalFirstToken1", "ghp_rehearsalRotatedToken2"
	if _, err := w.aws("ssm", "put-parameter", "--name", tokenParam, "--type", "SecureString", "--value", oldToken, "--overwrite"); err != nil {
		t.Fatal(err)
	}
	// The host as a private repository's user data leaves it: install.sh
	// with the token parameter, on the settings it was bootstrapped with
	// (and the agent it runs now).
	h.exec(`set -a; . /etc/mywebchat/host.env; GHCR_TOKEN_PARAM=` + tokenParam + `; set +a
AGENT_BINARY=/usr/local/bin/deploy-agent sh /opt/mywebchat/deploy/install.sh`)
	want := func(token string) string {
		return `{"ServerURL":"ghcr.io","Username":"` + owner + `","Secret":"` + token + `"}`
	}
	if got, err := h.credentials(); err != nil || got != want(oldToken) {
		t.Fatalf("%s: credentials before the rotation: %q (%v), want %s", h.name, got, err, want(oldToken))
	}
	before := h.hostFiles()

	if _, err := w.aws("ssm", "put-parameter", "--name", tokenParam, "--type", "SecureString", "--value", newToken, "--overwrite"); err != nil {
		t.Fatal(err)
	}
	if got, err := h.credentials(); err != nil || got != want(newToken) {
		t.Errorf("%s: credentials after put-parameter --overwrite: %q (%v), want the new token %s", h.name, got, err, want(newToken))
	}
	if after := h.hostFiles(); after != before {
		t.Errorf("%s: the rotation touched the host:\nbefore:\n%s\nafter:\n%s", h.name, before, after)
	}
}
