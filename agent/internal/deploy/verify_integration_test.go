//go:build integration

package deploy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/nginx"
)

// TestReloadHandover runs verify and then waitHandover, as a deploy does across its verify and
// drain steps, against a real nginx after each of a series of reloads from an upstream that
// answers 502 to one that answers from the new color, then asks nginx again for 300 ms. No
// answer may come from the old configuration: after a reload nginx's old workers keep taking
// new connections for 100 ms beside the new ones, and ending on verify's two answers let about
// three reloads in four be followed by a 502.
func TestReloadHandover(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatalf("nginx is required (scripts/setup.sh installs it): %v", err)
	}
	green := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"status":"ok","color":"green"}`)
	}))
	t.Cleanup(green.Close)

	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	writeConf(t, conf, strings.NewReplacer("{{dir}}", dir, "{{port}}", fmt.Sprint(port)).Replace(`worker_processes 1;
error_log {{dir}}/error.log warn;
pid {{dir}}/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path {{dir}}/body;
    proxy_temp_path {{dir}}/proxy;
    include {{dir}}/upstream.conf;
    server {
        listen 127.0.0.1:{{port}};
        location = /healthz { proxy_pass http://chat; }
    }
}
`))
	upstream := filepath.Join(dir, "upstream.conf")
	old := "upstream chat { server 127.0.0.1:1; }\n" // nothing listens: 502
	next := fmt.Sprintf("upstream chat { server %s; }\n", strings.TrimPrefix(green.URL, "http://"))
	writeConf(t, upstream, old)
	nginxCmd := func(args ...string) []string {
		return append([]string{"nginx", "-p", dir, "-c", conf}, args...)
	}
	master := exec.Command("nginx", "-p", dir, "-c", conf, "-g", "daemon off;")
	if err := master.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	// SIGTERM, not SIGKILL: nginx's workers outlive a killed master (and keep whatever files the
	// test process had open, a lock among them); a terminated master takes its workers along.
	t.Cleanup(func() {
		_ = master.Process.Signal(syscall.SIGTERM)
		_ = master.Wait()
	})
	checkURL := fmt.Sprintf("http://127.0.0.1:%d/healthz", port)
	waitFor(t, checkURL, 502)

	cfg := config.Default()
	cfg.Proxy.CheckURL = checkURL
	cfg.App.Health.HealthyAfter = 2
	cfg.App.Health.Timeout = config.Duration(time.Second)
	cfg.App.Verify = config.Duration(2 * time.Second)
	d := &Deployer{}
	reload := nginx.HostCommand(nginxCmd("-s", "reload"))
	ctx := t.Context()
	const rounds = 8
	for i := range rounds {
		writeConf(t, upstream, next)
		if err := reload(ctx); err != nil {
			t.Fatal(err)
		}
		first, err := d.verify(ctx, &cfg, "green")
		if err != nil {
			t.Fatalf("round %d: verify: %v", i, err)
		}
		waitHandover(ctx, first)
		end := time.Now().Add(300 * time.Millisecond)
		for time.Now().Before(end) {
			if code := get(ctx, checkURL); code != 200 {
				t.Fatalf("round %d: %s answered %d after verify passed: the old configuration still took connections", i, checkURL, code)
			}
			time.Sleep(5 * time.Millisecond)
		}
		// Back to the dead upstream, and wait until only the old configuration answers again.
		writeConf(t, upstream, old)
		if err := reload(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, checkURL, 502)
		time.Sleep(300 * time.Millisecond)
	}
}

func writeConf(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get returns the status of one request on a new connection, or 0 when there was none.
func get(ctx context.Context, url string) int {
	code, _, err := HTTPProbe(ctx, url, time.Second)
	if err != nil {
		return 0
	}
	return code
}

// waitFor asks url until it answers code, for at most 5 s.
func waitFor(t *testing.T, url string, code int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for get(t.Context(), url) != code {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer %d within 5s", url, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
