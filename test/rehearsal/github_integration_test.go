//go:build integration

package rehearsal

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	// githubAPI is where a private repository's host reaches the stand-in
	// for GitHub's API (fakegithub, on the host's own loopback).
	githubAPI = "http://127.0.0.1:9080"
	// privateToken reads the private repository's releases; it is in
	// Parameter Store as bundleTokenParam, and fakegithub accepts only it.
	privateToken     = "github_pat_rehearsalReleasesToken0"
	bundleTokenParam = "/mywebchat/github-releases-token"
	// imagesToken is the private repository's GHCR pull token (tokenParam).
	imagesToken = "ghp_rehearsalImagesToken0"
	githubDir   = "/var/lib/fakegithub"
)

// startGitHub runs fakegithub on h as a transient systemd unit, serving the
// release assets in releasesDir as a private repository's, and stores the
// token it accepts (and the images' token) in Parameter Store, where the
// user data reads them.
func (h *host) startGitHub() {
	t := h.w.t
	for param, token := range map[string]string{bundleTokenParam: privateToken, tokenParam: imagesToken} {
		if _, err := h.w.aws("ssm", "put-parameter", "--name", param, "--type", "SecureString", "--value", token, "--overwrite"); err != nil {
			t.Fatal(err)
		}
	}
	run(t, ".", "docker", "cp", filepath.Join(h.w.dir, "fakegithub"), h.container+":/usr/local/lib/fakegithub")
	cmd := exec.Command("docker", "exec", "-i", "-u", "0", h.container, "/bin/sh", "-c",
		"install -d -m 0700 "+githubDir+" && umask 077 && cat >"+githubDir+"/token")
	cmd.Stdin = strings.NewReader(privateToken + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: write the token file: %v %s", h.name, err, out)
	}
	h.exec("mkdir -p " + releasesDir + " && systemd-run --unit=fakegithub --quiet /usr/local/lib/fakegithub -listen 127.0.0.1:9080 " +
		"-download localhost:9081 -root " + releasesDir + " -repo " + owner + "/mywebchat -token-file " + githubDir + "/token -log " + githubDir + "/requests.log")
	// Ready once it answers (404 without the token, as GitHub for a private repository).
	if err := waitFor(context.Background(), 20*time.Second, h.name+": fakegithub answers", func() (bool, string) {
		out, _ := h.execErr("curl -s -o /dev/null -w '%{http_code}' " + githubAPI + "/repos/" + owner + "/mywebchat/releases/latest")
		return strings.TrimSpace(out) == "404", out
	}); err != nil {
		logs, _ := h.execErr("journalctl -u fakegithub --no-pager | tail -20")
		t.Fatalf("%v\n%s", err, logs)
	}
	h.githubSeen = len(h.githubRequests())
}

// githubRequests is fakegithub's request log on h: "METHOD PATH STATUS auth=...".
func (h *host) githubRequests() []string {
	out := h.exec("cat " + githubDir + "/requests.log")
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.SplitN(l, " ", 2); len(f) == 2 {
			lines = append(lines, f[1]) // without the time
		}
	}
	return lines
}

// requireFetchedPrivately checks that h's requests to the stand-in GitHub
// since the last check were: release (latest, or tags/TAG) with
// the token, its bundle asset with the token answered by a redirect, the
// download from storage without it; and that nothing was refused (no
// token on a command line or in an environment, none sent to storage).
func (h *host) requireFetchedPrivately(t testing.TB, release string) {
	t.Helper()
	all := h.githubRequests()
	got := all[h.githubSeen:]
	h.githubSeen = len(all)
	want := []*regexp.Regexp{
		regexp.MustCompile(`^GET /repos/` + owner + `/mywebchat/releases/` + regexp.QuoteMeta(release) + ` 200 auth=ok$`),
		regexp.MustCompile(`^GET /repos/` + owner + `/mywebchat/releases/assets/[0-9]+ 302 auth=ok$`),
		regexp.MustCompile(`^GET /storage/[0-9]+ 200 auth=storage$`),
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = want[i].MatchString(got[i])
	}
	if !ok {
		t.Fatalf("%s: requests to GitHub's API for release %s:\n%s\nwant: release with the token, asset with the token (302), storage without it",
			h.name, release, strings.Join(got, "\n"))
	}
}

// requireNoGitHubRequest checks that h asked GitHub's API nothing since the
// last check.
func (h *host) requireNoGitHubRequest(t testing.TB) {
	t.Helper()
	if got := h.githubRequests()[h.githubSeen:]; len(got) > 0 {
		t.Fatalf("%s: unexpected requests to GitHub's API:\n%s", h.name, strings.Join(got, "\n"))
	}
}

// requireNoTokenOnDisk checks that the token is in no file on h and in no
// log (the journal), except fakegithub's own token file; the search reads
// the token from that file, so it is not on grep's command line either.
func (h *host) requireNoTokenOnDisk(t testing.TB, extra ...string) {
	t.Helper()
	out, _ := h.execErr("grep -rlsF -f " + githubDir + "/token --exclude-dir=fakegithub /etc /opt /root /var/log /var/lib/cloud /var/lib/mywebchat /var/tmp /tmp /run/log /usr/local; " +
		"journalctl --no-pager -o cat 2>/dev/null | grep -cF -f " + githubDir + "/token")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if n := lines[len(lines)-1]; n != "0" || len(lines) > 1 {
		t.Fatalf("%s: the token is on the host (files, then the journal's count of lines holding it):\n%s", h.name, out)
	}
	for _, s := range extra {
		if strings.Contains(s, privateToken) {
			t.Fatalf("%s: the token is in the output:\n%s", h.name, s)
		}
	}
}
