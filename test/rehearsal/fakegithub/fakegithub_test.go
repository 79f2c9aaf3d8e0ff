package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testToken = "github_pat_fakegithubUnitTest0"

// newTestServer serves one release, sha-1, with one asset, through
// httptest servers for the API and the storage.
func newTestServer(t *testing.T) (s *server, api, storage *httptest.Server) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sha-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "sha-1", "mywebchat-host.tar.gz"), []byte("bundle"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "latest"), []byte("sha-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(filepath.Join(t.TempDir(), "requests.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lf.Close() })
	s = &server{root: root, owner: "acme", repo: "mywebchat", token: []byte(testToken), key: []byte("k"), procDir: "/proc", logFile: lf}
	api = httptest.NewServer(http.HandlerFunc(s.api))
	storage = httptest.NewServer(http.HandlerFunc(s.storage))
	t.Cleanup(api.Close)
	t.Cleanup(storage.Close)
	s.apiBase = api.URL
	// Another host name for the storage, as GitHub's: a client must not
	// send the token there.
	_, port, _ := net.SplitHostPort(storage.Listener.Addr().String())
	s.download = "localhost:" + port
	return s, api, storage
}

func get(t *testing.T, url string, header map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestPrivateRepository(t *testing.T) {
	_, api, _ := newTestServer(t)
	latest := api.URL + "/repos/acme/mywebchat/releases/latest"
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong-token"}} {
		if resp := get(t, latest, h); resp.StatusCode != http.StatusNotFound {
			t.Errorf("without the token (%v): %d, want 404", h, resp.StatusCode)
		}
	}
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	resp := get(t, latest, auth)
	var rel ghRelease
	if err := json.NewDecoder(resp.Body).Decode(&rel); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("latest with the token: %d %v", resp.StatusCode, err)
	}
	if rel.TagName != "sha-1" || len(rel.Assets) != 1 || rel.Assets[0].Name != "mywebchat-host.tar.gz" {
		t.Fatalf("release %+v", rel)
	}
	// The asset: a redirect to storage, which refuses the token and serves
	// the signed URL without it.
	resp = get(t, rel.Assets[0].URL, map[string]string{"Authorization": "Bearer " + testToken, "Accept": "application/octet-stream"})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "http://localhost:") {
		t.Fatalf("asset download: %d to %q, want 302 to the storage host", resp.StatusCode, loc)
	}
	if resp := get(t, loc, auth); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("storage with the token forwarded: %d, want 400", resp.StatusCode)
	}
	if resp := get(t, loc+"0", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("storage with a bad signature: %d, want 403", resp.StatusCode)
	}
	resp = get(t, loc, nil)
	body := make([]byte, 64)
	n, _ := resp.Body.Read(body)
	if resp.StatusCode != http.StatusOK || string(body[:n]) != "bundle" {
		t.Errorf("storage: %d %q", resp.StatusCode, body[:n])
	}
}

// TestTokenInProcessList: while a process has the token on its command
// line, every authenticated request is refused and the process named.
func TestTokenInProcessList(t *testing.T) {
	_, api, _ := newTestServer(t)
	cmd := exec.Command("sh", "-c", "sleep 30", testToken)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	resp := get(t, api.URL+"/repos/acme/mywebchat/releases/latest", map[string]string{"Authorization": "Bearer " + testToken})
	var msg struct{ Message string }
	_ = json.NewDecoder(resp.Body).Decode(&msg)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(msg.Message, "TOKEN EXPOSED") {
		t.Fatalf("with the token on a command line: %d %q, want 403 naming the process", resp.StatusCode, msg.Message)
	}
}
