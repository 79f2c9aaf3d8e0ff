package awstest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort is a port of 127.0.0.1 nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// hostBundle is a gzipped tar holding deploy/install.sh, as a host bundle does.
func hostBundle(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	body := []byte("#!/bin/sh\necho installed\n")
	if err := tw.WriteHeader(&tar.Header{Name: "deploy/install.sh", Mode: 0o755, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	tw.Write(body)
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// TestUserDataFetchRuns runs the host stack's rendered user data, up to the end of its
// fetch, for a private repository: the releases' token is read from Parameter Store
// (moto, through the real aws CLI) and the bundle comes through GitHub's API
// (test/rehearsal/fakegithub: 404 without the token, a redirect to storage that refuses
// it, 403 when the token is in any process's command line or environment); and for a
// public one, from BundleUrl with no token. /opt/mywebchat becomes a temporary folder.
func TestUserDataFetchRuns(t *testing.T) {
	t.Parallel() // an external tool, run beside the other tests
	dir := t.TempDir()
	fg := filepath.Join(dir, "fakegithub")
	if out, err := exec.Command("go", "build", "-o", fg, "../../../test/rehearsal/fakegithub").CombinedOutput(); err != nil {
		t.Fatalf("build fakegithub: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "releases")
	os.MkdirAll(filepath.Join(root, "sha-1"), 0o755)
	bundle := filepath.Join(root, "sha-1", "mywebchat-host.tar.gz")
	os.WriteFile(bundle, hostBundle(t), 0o644)
	os.WriteFile(filepath.Join(root, "latest"), []byte("sha-1\n"), 0o644)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(bundleToken), 0o600)
	reqLog := filepath.Join(dir, "requests.log")
	apiAddr := "127.0.0.1:" + freePort(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, fg, "-listen", apiAddr, "-download", "localhost:"+freePort(t),
		"-root", root, "-repo", "Acme/MyWebChat", "-token-file", tokenFile, "-log", reqLog)
	var srvOut bytes.Buffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", apiAddr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fakegithub did not listen on %s: %v\n%s", apiAddr, err, srvOut.String())
		}
		time.Sleep(50 * time.Millisecond) // polling a server that is starting
	}

	e := newUpEnv(t, startMoto(t))
	var put struct{ Version int }
	e.aws(t, &put, "ssm", "put-parameter", "--name", "/mywebchat/bundle-token", "--type", "SecureString", "--value", bundleToken)

	tpl := loadTemplate(t, "../host.yaml")
	for _, tc := range []struct{ name, param, url string }{
		{"private", "/mywebchat/bundle-token", "https://github.com/Acme/MyWebChat/releases/latest/download/mywebchat-host.tar.gz"},
		{"public", "", "file://" + bundle},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := renderUserData(t, tpl, "LaunchTemplate", map[string]string{
				"BundleTokenParameterName": tc.param, "BundleUrl": tc.url, "AWS::Region": "eu-west-1",
				"GitHubRepository": "Acme/MyWebChat", "ImageOwner": "acme",
			})
			end := strings.Index(script, "rm -f \"$fetch\"")
			if end < 0 {
				t.Fatalf("the user data does not remove its fetch script:\n%s", script)
			}
			opt := filepath.Join(t.TempDir(), "opt")
			script = strings.ReplaceAll(script[:end], "/opt/mywebchat", opt)
			script = strings.Replace(script, "exec >>/var/log/mywebchat-bootstrap.log 2>&1\n", "", 1)
			before, _ := os.ReadFile(reqLog)
			// A fetch that fails is retried every 30 s: one that has not
			// succeeded in 45 s has failed.
			runCtx, stop := context.WithTimeout(ctx, 45*time.Second)
			defer stop()
			cmd := exec.CommandContext(runCtx, "sh", "-c", script)
			cmd.WaitDelay = 2 * time.Second
			cmd.Env = append(e.env, "MYWEBCHAT_GITHUB_API=http://"+apiAddr)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the user data's fetch failed: %v\n%s", err, out)
			}
			if b, err := os.ReadFile(filepath.Join(opt, "deploy", "install.sh")); err != nil || !strings.Contains(string(b), "installed") {
				t.Errorf("the bundle was not unpacked in /opt/mywebchat: %v", err)
			}
			after, _ := os.ReadFile(reqLog)
			requests := string(after[len(before):])
			if tc.param == "" {
				if requests != "" {
					t.Errorf("a public repository's host asked GitHub's API:\n%s", requests)
				}
				return
			}
			if strings.Count(requests, "\n") < 2 || strings.Contains(requests, " 403 ") || strings.Contains(requests, " 404 ") {
				t.Errorf("fakegithub's requests (want the release and its asset, authenticated, no violation):\n%s", requests)
			}
			if strings.Contains(string(out), bundleToken) {
				t.Errorf("the token is in the user data's output")
			}
		})
	}
}
