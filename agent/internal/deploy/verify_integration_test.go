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
	nginxtemplates "github.com/mywebchat/mywebchat/nginx-templates"
)

// TestReloadHandover runs verify and then waitHandover, as a deploy does across its verify and
// drain steps, against a real nginx after each of a series of reloads from an upstream that
// answers 502 to one that answers from the new color, then asks nginx again for 300 ms. No
// answer may come from the old configuration: after a reload nginx's old workers keep taking
// new connections for 100 ms beside the new ones, and ending on verify's two answers let about
// three reloads in four be followed by a 502.
func TestReloadHandover(t *testing.T) {
	green := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"status":"ok","color":"green"}`)
	}))
	t.Cleanup(green.Close)

	dir := t.TempDir()
	old := "upstream chat { server 127.0.0.1:1; }\n" // nothing listens: 502
	next := fmt.Sprintf("upstream chat { server %s; }\n", strings.TrimPrefix(green.URL, "http://"))
	upstream, checkURL, reload := startNginx(t, dir, 1, `location = /healthz { proxy_pass http://chat; }`, old)
	waitFor(t, checkURL, 502)
	cfg := verifyConfig(checkURL)
	d := &Deployer{}
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

// startNginx runs nginx with its files in dir: workers worker processes, the upstream file
// dir/upstream.conf (first written with upstream) and one server on a free 127.0.0.1 port whose
// only location is location. It returns the upstream file's path, check_url (the server's
// /healthz) and a reload.
func startNginx(t *testing.T, dir string, workers int, location, upstream string) (string, string, func(context.Context) error) {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatalf("nginx is required (scripts/setup.sh installs it): %v", err)
	}
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	writeConf(t, conf, strings.NewReplacer("{{dir}}", dir, "{{port}}", fmt.Sprint(port), "{{workers}}", fmt.Sprint(workers), "{{location}}", location).Replace(`worker_processes {{workers}};
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
        {{location}}
    }
}
`))
	file := filepath.Join(dir, "upstream.conf")
	writeConf(t, file, upstream)
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
	return file, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), nginx.HostCommand([]string{"nginx", "-p", dir, "-c", conf, "-s", "reload"})
}

// verifyConfig is what verify needs: check_url, two answers, within 2 s.
func verifyConfig(checkURL string) config.Config {
	cfg := config.Default()
	cfg.Proxy.CheckURL = checkURL
	cfg.App.Health.HealthyAfter = 2
	cfg.App.Health.Timeout = config.Duration(time.Second)
	cfg.App.Verify = config.Duration(2 * time.Second)
	return cfg
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

// colorServer is a color on a unix socket, as the chat server serves: /healthz answers its color,
// or 503 while it drains; stop drains it for a moment, then closes its socket.
type colorServer struct {
	sock     string
	srv      *http.Server
	draining chan struct{}
}

func startColor(t *testing.T, sock, color string) *colorServer {
	t.Helper()
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	// nginx's workers run as an unprivileged user when the test runs as root.
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	c := &colorServer{sock: sock, draining: make(chan struct{})}
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-c.draining:
			http.Error(w, `{"status":"draining"}`, http.StatusServiceUnavailable)
		default:
			fmt.Fprintf(w, `{"status":"ok","color":%q}`, color)
		}
	})}
	go func() { _ = c.srv.Serve(l) }()
	t.Cleanup(func() { _ = c.srv.Close() })
	return c
}

func (c *colorServer) stop() {
	close(c.draining)
	time.Sleep(20 * time.Millisecond)
	_ = c.srv.Close()
}

// TestStopBehindBackup runs a switch from blue to green against a real nginx with the shipped
// upstream template and the shipped locations' retry, then stops blue at once after verify, as the
// drain does without waiting out nginx's reload handover. Requests go on all the while, on new
// connections: none may fail, and once blue's stop returned every answer must come from green.
// nginx's old workers keep taking new connections for 100 ms after a reload; the ones they send
// to blue as it drains (503) or once it is gone (refused) go to green, the backup.
func TestStopBehindBackup(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil { // nginx's workers reach the sockets
			t.Fatal(err)
		}
	}
	socks := map[string]string{"blue": filepath.Join(dir, "blue.sock"), "green": filepath.Join(dir, "green.sock")}
	render := func(serve, backup string) string {
		b, err := nginx.Render(nginxtemplates.FS, nginxtemplates.Upstream, nginx.Site{App: "chat", Color: serve, Release: "r",
			Servers: []string{"unix:" + socks[serve]}, Backups: []string{"unix:" + socks[backup]}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The shipped locations' retry.
	upstream, checkURL, reload := startNginx(t, dir, 2, `location = /healthz {
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_503;
            proxy_next_upstream_tries 2;
        }`, render("blue", "green"))
	cfg := verifyConfig(checkURL)
	d := &Deployer{}
	ctx := t.Context()
	startColor(t, socks["green"], "green")
	const rounds = 8
	for i := range rounds {
		blue := startColor(t, socks["blue"], "blue")
		waitFor(t, checkURL, 200)
		time.Sleep(300 * time.Millisecond) // the previous round's workers are gone

		writeConf(t, upstream, render("green", "blue"))
		if err := reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := d.verify(ctx, &cfg, "green"); err != nil {
			t.Fatalf("round %d: verify: %v", i, err)
		}
		type answer struct {
			at    time.Time
			code  int
			color string
		}
		answers := make(chan answer, 1000)
		done := make(chan struct{})
		go func() {
			defer close(answers)
			for {
				select {
				case <-done:
					return
				default:
				}
				code, body, _ := HTTPProbe(ctx, checkURL, time.Second)
				hb, _ := parseHealth(body)
				answers <- answer{time.Now(), code, hb.Color}
				time.Sleep(2 * time.Millisecond)
			}
		}()
		began := time.Now()
		blue.stop()
		stopped := time.Now()
		time.Sleep(300 * time.Millisecond)
		close(done)
		n := 0
		for a := range answers {
			n++
			switch {
			case a.code != 200:
				t.Errorf("round %d: %s answered %d %s after blue's stop began", i, checkURL, a.code, a.at.Sub(began))
			case a.at.After(stopped) && a.color != "green":
				t.Errorf("round %d: answered by %q %s after blue was stopped", i, a.color, a.at.Sub(stopped))
			}
		}
		if n < 50 {
			t.Fatalf("round %d: only %d answers", i, n)
		}
		// Back to blue for the next round.
		writeConf(t, upstream, render("blue", "green"))
		if err := reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
