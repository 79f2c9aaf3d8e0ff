//go:build integration

package deploytest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/gorilla/websocket"

	nginxtemplates "github.com/mywebchat/mywebchat/nginx-templates"
)

// wantCSP is the policy the page must satisfy (static/ uses no inline
// script or style and talks only to its own origin).
const wantCSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// Hardening flags the deploy agent and the systemd units use; the images
// must run under them.
var (
	appHardening   = []string{"--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"}
	nginxHardening = []string{"--read-only", "--tmpfs", "/tmp", "--tmpfs", "/run", "--cap-drop", "ALL",
		"--cap-add", "CHOWN", "--cap-add", "SETUID", "--cap-add", "SETGID", "--cap-add", "NET_BIND_SERVICE",
		"--security-opt", "no-new-privileges"}
)

func docker(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	// Image builds compile the chat server; on a busy shared machine that
	// takes minutes. go test's own -timeout bounds the whole run.
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Minute)
	defer cancel()
	out, err := docker(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitHTTP polls url until it answers with want or the deadline passes.
func waitHTTP(t *testing.T, url string, want int, within time.Duration) *http.Response {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				resp.Body = io.NopCloser(bytes.NewReader(body))
				return resp
			}
			last = fmt.Sprintf("status %d: %.200s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("GET %s: no %d within %s; last: %s", url, want, within, last)
	return nil
}

func randSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestImages builds both images from this checkout, runs the chat server
// hardened as the agent runs it, and runs nginx on the host network in front
// of it, checking the site config end to end.
func TestImages(t *testing.T) {
	if _, err := docker(t.Context(), "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Fatalf("docker engine unreachable (run scripts/setup.sh): %v", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	id := randSuffix(t)
	appTag := "mywebchat-delivery-test/app:" + id
	nginxTag := "mywebchat-delivery-test/nginx:" + id
	version := "it-" + id

	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		docker(ctx, "rmi", "-f", appTag, nginxTag)
	})
	mustDocker(t, "build", "-q", "--network", "host", "-f", filepath.Join(root, "Dockerfile.app"),
		"--build-arg", "GO_IMAGE="+envOr("GO_IMAGE", "mywebchat/go-builder:local"),
		"--build-arg", "VERSION="+version, "--build-arg", "REVISION="+id,
		"-t", appTag, root)
	mustDocker(t, "build", "-q", "--network", "host", "-f", filepath.Join(root, "Dockerfile.nginx"),
		"--build-arg", "NGINX_IMAGE="+envOr("NGINX_IMAGE", "mywebchat/debian-base:local"),
		"--build-arg", "VERSION="+version, "--build-arg", "REVISION="+id,
		"-t", nginxTag, root)

	t.Run("app image metadata", func(t *testing.T) {
		var cfg struct {
			User        string
			Entrypoint  []string
			Labels      map[string]string
			Healthcheck struct{ Test []string }
		}
		if err := json.Unmarshal([]byte(mustDocker(t, "image", "inspect", "--format", "{{json .Config}}", appTag)), &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.User != "65532:65532" {
			t.Errorf("user: got %q, want 65532:65532", cfg.User)
		}
		if got, want := strings.Join(cfg.Healthcheck.Test, " "), "CMD /chatserver -healthcheck"; got != want {
			t.Errorf("healthcheck: got %q, want %q", got, want)
		}
		for k, want := range map[string]string{
			"org.opencontainers.image.version":  version,
			"org.opencontainers.image.revision": id,
		} {
			if got := cfg.Labels[k]; got != want {
				t.Errorf("label %s: got %q, want %q", k, got, want)
			}
		}
		if cfg.Labels["org.opencontainers.image.source"] == "" {
			t.Error("label org.opencontainers.image.source is empty")
		}
	})

	// The chat server, hardened and published on loopback only.
	appName := "mywebchat-delivery-test-app-" + id
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		docker(ctx, "rm", "-f", appName)
	})
	// The data path as the agent lays it out: a socket folder (0711, owned by
	// the image's user) mounted at /sockets in the color and at its own path
	// in nginx, which reaches the color through unix:<folder>/blue.sock.
	sockDir := filepath.Join(t.TempDir(), "sockets")
	if err := os.Mkdir(sockDir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sockDir, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "-d", "--name", appName, "-p", "127.0.0.1::8080",
		"-v", sockDir + ":/sockets", "-e", "CHAT_SOCKET=/sockets/blue.sock",
		"-e", "APP_COLOR=blue", "-e", "APP_VERSION=" + version}, appHardening...)
	mustDocker(t, append(args, appTag)...)
	hostPort := mustDocker(t, "port", appName, "8080/tcp")
	_, appPort, err := net.SplitHostPort(strings.Split(hostPort, "\n")[0])
	if err != nil {
		t.Fatalf("docker port %q: %v", hostPort, err)
	}

	t.Run("app healthz hardened", func(t *testing.T) {
		resp := waitHTTP(t, "http://127.0.0.1:"+appPort+"/healthz", http.StatusOK, 20*time.Second)
		var h struct{ Status, Color, Version string }
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
			t.Fatalf("decode healthz: %v", err)
		}
		if h.Status != "ok" || h.Color != "blue" || h.Version != version {
			t.Errorf("healthz: got %+v, want ok/blue/%s", h, version)
		}
		// The image's HEALTHCHECK command, run the way the engine runs it.
		if out, err := docker(t.Context(), "exec", appName, "/chatserver", "-healthcheck"); err != nil {
			t.Errorf("/chatserver -healthcheck in the container: %v %s", err, out)
		}
	})

	tmp := t.TempDir()
	upDir := filepath.Join(tmp, "upstream")
	if err := os.Mkdir(upDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// writeUpstream renders the agent's upstream template with server serving and backups as
	// the other color.
	upstreamTmpl := template.Must(template.ParseFS(nginxtemplates.FS, nginxtemplates.Upstream))
	writeUpstream := func(t *testing.T, server string, backups ...string) {
		t.Helper()
		var b strings.Builder
		site := struct {
			App, Color, Release string
			Servers, Backups    []string
		}{"mywebchat", "blue", "it-" + id, []string{server}, backups}
		if err := upstreamTmpl.Execute(&b, site); err != nil {
			t.Fatal(err)
		}
		conf := b.String()
		// Write then rename, as the agent does, so the folder mount sees it.
		if err := os.WriteFile(filepath.Join(upDir, ".upstream.tmp"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(upDir, ".upstream.tmp"), filepath.Join(upDir, "upstream.conf")); err != nil {
			t.Fatal(err)
		}
	}
	writeUpstream(t, "unix:"+sockDir+"/blue.sock", "unix:"+sockDir+"/green.sock")
	upMount := upDir + ":/var/lib/deploy-agent/nginx:ro"
	sockMount := sockDir + ":" + sockDir + ":ro"

	t.Run("nginx -t with the agent's upstream file", func(t *testing.T) {
		args := append([]string{"run", "--rm", "-v", upMount}, nginxHardening...)
		out, err := docker(t.Context(), append(args, nginxTag, "nginx", "-t")...)
		if err != nil {
			t.Fatalf("nginx -t: %v %s", err, out)
		}
	})

	t.Run("nginx -t behind a load balancer", func(t *testing.T) {
		// As install.sh MYWEBCHAT_BEHIND_LB=1 mounts it, from the image's own copy.
		lb := filepath.Join(root, "nginx-templates", "listen-behind-lb.conf")
		args := append([]string{"run", "--rm", "-v", upMount,
			"-v", lb + ":/etc/nginx/mywebchat/listen.conf:ro"}, nginxHardening...)
		out, err := docker(t.Context(), append(args, nginxTag, "nginx", "-T")...)
		if err != nil {
			t.Fatalf("nginx -T with listen-behind-lb.conf: %v %s", err, out)
		}
		for _, want := range []string{"keepalive_timeout 0;", "real_ip_header X-Forwarded-For;"} {
			if !strings.Contains(out, want) {
				t.Errorf("nginx -T does not show %q; is the listen file included in the server?", want)
			}
		}
		if _, err := docker(t.Context(), "run", "--rm", nginxTag, "test", "-f", "/etc/nginx/mywebchat/listen-behind-lb.conf"); err != nil {
			t.Errorf("the image does not carry listen-behind-lb.conf: %v", err)
		}
	})

	t.Run("behind a load balancer, X-Forwarded-For only from the balancer", func(t *testing.T) {
		// nginx on Docker's bridge network, published on loopback: the test's
		// requests reach it from the bridge's gateway, which plays the balancer.
		// A plain request shows that address first.
		lb := startBehindLB(t, root, nginxTag, "192.0.2.0/24", upMount, sockMount)
		get(t, lb.base+"/?probe=plain", nil)
		gateway := lb.remote(t, "/?probe=plain")
		if gateway == "" || gateway == "127.0.0.1" {
			t.Fatalf("requests through the published port come from %q; the test needs a non-loopback peer", gateway)
		}
		// The balancer's ranges do not include the sender: a forged
		// X-Forwarded-For (claiming loopback, which the limits exempt) is ignored.
		get(t, lb.base+"/?probe=forged", map[string]string{"X-Forwarded-For": "127.0.0.1"})
		if got := lb.remote(t, "/?probe=forged"); got != gateway {
			t.Errorf("a forged X-Forwarded-For from an untrusted peer was believed: remote %q, want the peer %s", got, gateway)
		}

		// From the balancer's own range, the address the balancer appended is
		// taken, not what the client put before it.
		lb = startBehindLB(t, root, nginxTag, gateway+"/32", upMount, sockMount)
		get(t, lb.base+"/?probe=via-lb", map[string]string{"X-Forwarded-For": "127.0.0.1, 203.0.113.7"})
		if got := lb.remote(t, "/?probe=via-lb"); got != "203.0.113.7" {
			t.Errorf("through the balancer: remote %q, want 203.0.113.7 (the address the balancer appended)", got)
		}
	})

	t.Run("nginx -t with the HTTPS server enabled", func(t *testing.T) {
		le := filepath.Join(tmp, "letsencrypt")
		hostConf := filepath.Join(tmp, "hostconf")
		writeSelfSigned(t, filepath.Join(le, "live", "chat.example.com"))
		example, err := os.ReadFile(filepath.Join(root, "nginx-templates", "https.conf.example"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(hostConf, 0o755); err != nil {
			t.Fatal(err)
		}
		// "http2 on" came with nginx 1.25.1 (the production image has 1.27);
		// Debian 12's nginx, the local stand-in base, is 1.22 and knows only
		// the listen flag. On such a base the directive is checked as text
		// (TestHTTPSExampleUsesHTTP2Directive) and left out here.
		if v := nginxVersion(t, nginxTag); !atLeast(v, 1, 25, 1) {
			t.Logf("the image's nginx is %s, older than 1.25.1: checking https.conf.example without its \"http2 on;\"", v)
			example = bytes.Replace(example, []byte("    http2 on;\n"), nil, 1)
		}
		if err := os.WriteFile(filepath.Join(hostConf, "https.conf"), example, 0o644); err != nil {
			t.Fatal(err)
		}
		args := append([]string{"run", "--rm", "-v", upMount,
			"-v", le + ":/etc/letsencrypt:ro", "-v", hostConf + ":/etc/nginx/mywebchat/host:ro"}, nginxHardening...)
		out, err := docker(t.Context(), append(args, nginxTag, "nginx", "-T")...)
		if err != nil {
			t.Fatalf("nginx -T with https.conf: %v %s", err, out)
		}
		if !strings.Contains(out, "listen 443 ssl") {
			t.Errorf("nginx -T does not show the HTTPS server; is the host folder included?")
		}
	})

	// nginx on the host network, listening on a free loopback port through a
	// mounted listen.conf, as the demo runs it.
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	listenConf := filepath.Join(tmp, "listen.conf")
	if err := os.WriteFile(listenConf, fmt.Appendf(nil, "listen 127.0.0.1:%d;\n", port), 0o644); err != nil {
		t.Fatal(err)
	}
	nginxName := "mywebchat-delivery-test-nginx-" + id
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if t.Failed() {
			logs, _ := docker(ctx, "logs", "--tail", "30", nginxName)
			t.Logf("nginx logs:\n%s", logs)
		}
		docker(ctx, "rm", "-f", nginxName)
	})
	args = append([]string{"run", "-d", "--name", nginxName, "--network", "host",
		"-v", upMount, "-v", sockMount, "-v", listenConf + ":/etc/nginx/mywebchat/listen.conf:ro"}, nginxHardening...)
	mustDocker(t, append(args, nginxTag)...)
	// reload sends SIGHUP and waits until every worker that ran before it has exited. nginx
	// starts the new workers first and only then tells the old ones to stop accepting, and old
	// ones finish what they hold: until they are gone a new connection may still be taken by a
	// worker with the old upstream, even after a request through a new one saw the new one.
	reload := func(t *testing.T) {
		t.Helper()
		old := nginxWorkers(t, nginxName)
		mustDocker(t, "kill", "--signal", "HUP", nginxName)
		deadline := time.Now().Add(45 * time.Second) // worker_shutdown_timeout is 40 s
		for {
			now := nginxWorkers(t, nginxName)
			if len(now) > 0 && !slices.ContainsFunc(now, func(pid string) bool { return slices.Contains(old, pid) }) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx reload: workers %v from before the reload still run (now %v)", old, now)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	index, err := os.ReadFile(filepath.Join(root, "static", "index.html"))
	if err != nil {
		t.Fatalf("static/index.html: %v", err)
	}

	t.Run("static page and headers", func(t *testing.T) {
		resp := waitHTTP(t, base+"/", http.StatusOK, 15*time.Second)
		body, _ := io.ReadAll(resp.Body)
		if !bytes.Equal(body, index) {
			t.Errorf("GET /: body differs from static/index.html (%d vs %d bytes)", len(body), len(index))
		}
		for k, want := range map[string]string{
			"Content-Security-Policy": wantCSP,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
			"Cache-Control":           "no-cache",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("GET / header %s: got %q, want %q", k, got, want)
			}
		}
		if got := resp.Header.Get("Server"); got != "nginx" {
			t.Errorf("Server header: got %q, want bare \"nginx\" (server_tokens off)", got)
		}
	})

	t.Run("versioned assets cached, page gzipped", func(t *testing.T) {
		resp, err := http.Get(base + "/_mywebchat/unavailable.css?v=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Cache-Control"); got != "max-age=31536000" {
			t.Errorf("versioned asset Cache-Control: got %q, want max-age=31536000", got)
		}
		// Unversioned modules must revalidate, or a returning visitor could run
		// modules of two releases together.
		resp, err = http.Get(base + "/js/app.js")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Cache-Control"); resp.StatusCode != http.StatusOK || got != "no-cache" {
			t.Errorf("GET /js/app.js: status %d, Cache-Control %q; want 200, no-cache", resp.StatusCode, got)
		}
		if len(index) < 256 {
			t.Skipf("index.html is %d bytes, under gzip_min_length", len(index))
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err = http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
			t.Fatalf("GET / with Accept-Encoding gzip: Content-Encoding %q", got)
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if body, _ := io.ReadAll(zr); !bytes.Equal(body, index) {
			t.Errorf("gunzipped page differs from static/index.html")
		}
	})

	t.Run("healthz through nginx", func(t *testing.T) {
		resp := waitHTTP(t, base+"/healthz", http.StatusOK, 5*time.Second)
		var h struct{ Color string }
		if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Color != "blue" {
			t.Errorf("healthz through nginx: color %q, err %v", h.Color, err)
		}
	})

	t.Run("internal paths not exposed", func(t *testing.T) {
		for _, p := range []string{"/metrics", "/metrics/x", "/debug/pprof/", "/.env", "/index.html~"} {
			resp, err := http.Get(base + p)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("GET %s: got %d, want 404", p, resp.StatusCode)
			}
		}
	})

	t.Run("ws proxied to the chat server", func(t *testing.T) {
		hdr := http.Header{"Origin": {base}}
		conn, resp, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(base, "http")+"/ws?room=delivery", hdr)
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("dial /ws through nginx: %v (status %d)", err, status)
		}
		defer conn.Close()
		if err := conn.WriteJSON(map[string]any{"t": "hello", "name": "delivery", "sid": "delivery-" + id}); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			var f struct{ T, Color string }
			if err := conn.ReadJSON(&f); err != nil {
				t.Fatalf("waiting for welcome: %v", err)
			}
			if f.T == "welcome" {
				if f.Color != "blue" {
					t.Errorf("welcome color: got %q, want blue", f.Color)
				}
				return
			}
		}
	})

	t.Run("ws handshake headers forwarded", func(t *testing.T) {
		got := make(chan http.Header, 1)
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				io.WriteString(w, `{"status":"ok","color":"probe"}`)
				return
			}
			h := r.Header.Clone()
			h.Set("Host", r.Host)
			select {
			case got <- h:
			default:
			}
			u := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
			c, err := u.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			mt, msg, err := c.ReadMessage()
			if err == nil {
				c.WriteMessage(mt, msg)
			}
		}))
		defer up.Close()
		writeUpstream(t, strings.TrimPrefix(up.URL, "http://"))
		reload(t)
		waitBody(t, base+"/healthz", `"probe"`, 10*time.Second)

		conn, _, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(base, "http")+"/ws", http.Header{"Origin": {base}})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		if err := conn.WriteMessage(websocket.TextMessage, []byte("ping")); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "ping" {
			t.Fatalf("echo through nginx: %q, %v", msg, err)
		}
		h := <-got
		for k, want := range map[string]string{
			"Host":              fmt.Sprintf("127.0.0.1:%d", port),
			"Upgrade":           "websocket",
			"Connection":        "upgrade",
			"Origin":            base,
			"X-Forwarded-Proto": "http",
		} {
			if h.Get(k) != want {
				t.Errorf("upstream saw %s: %q, want %q", k, h.Get(k), want)
			}
		}
	})

	// After a switch, an nginx worker still on the previous upstream may send a request to the
	// old color while it drains: its /healthz and /ws answer 503 then (the agent's own probe
	// must see that). The user must still be served, by the other color, the upstream's backup.
	t.Run("a draining color's requests are answered by the other", func(t *testing.T) {
		draining := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"status":"draining","color":"old"}`)
		}))
		defer draining.Close()
		serving := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				io.WriteString(w, `{"status":"ok","color":"new"}`)
				return
			}
			u := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
			if c, err := u.Upgrade(w, r, nil); err == nil {
				c.WriteMessage(websocket.TextMessage, []byte("new"))
				c.Close()
			}
		}))
		defer serving.Close()
		writeUpstream(t, strings.TrimPrefix(draining.URL, "http://"), strings.TrimPrefix(serving.URL, "http://"))
		reload(t)
		for range 20 {
			resp, err := http.Get(base + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"new"`) {
				t.Fatalf("GET /healthz with the served color draining: %d %s, want 200 from the other color", resp.StatusCode, body)
			}
		}
		conn, resp, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(base, "http")+"/ws", http.Header{"Origin": {base}})
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("ws dial with the served color draining: %v (status %d), want the other color", err, status)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "new" {
			t.Errorf("ws through nginx with the served color draining: %q, %v; want the other color", msg, err)
		}
	})

	t.Run("friendly page when the upstream is down", func(t *testing.T) {
		writeUpstream(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		reload(t)
		resp := waitHTTP(t, base+"/healthz", http.StatusBadGateway, 10*time.Second)
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "Back in a moment") {
			t.Errorf("502 body is not the friendly page: %.200s", body)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != wantCSP {
			t.Errorf("502 CSP: got %q", got)
		}
		waitHTTP(t, base+"/_mywebchat/unavailable.css", http.StatusOK, time.Second)
		waitHTTP(t, base+"/", http.StatusOK, time.Second)
		_, _, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(base, "http")+"/ws", http.Header{"Origin": {base}})
		if !errors.Is(err, websocket.ErrBadHandshake) {
			t.Errorf("ws dial with the upstream down: got %v, want a bad handshake", err)
		}
	})
}

// nginxWorkers lists the process ids of the container's nginx workers, shutting down or not.
func nginxWorkers(t *testing.T, container string) []string {
	t.Helper()
	out := mustDocker(t, "top", container, "-o", "pid,args")
	var pids []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.Contains(line, "nginx: worker process") {
			pids = append(pids, f[0])
		}
	}
	return pids
}

// waitBody polls url until its body contains want.
func waitBody(t *testing.T, url, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), want) {
				return
			}
			last = string(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET %s: body never contained %q; last: %.200s", url, want, last)
}

// writeSelfSigned writes fullchain.pem and privkey.pem the way certbot lays
// them out, so nginx -t can load the HTTPS server.
func writeSelfSigned(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "chat.example.com"},
		DNSNames:     []string{"chat.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fullchain.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	// World-readable only because it is a throwaway test key: nginx's master
	// reads it as root inside the container anyway.
	if err := os.WriteFile(filepath.Join(dir, "privkey.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// behindLB is an nginx container with the listen file install.sh writes for
// a load balancer's target.
type behindLB struct {
	name, base string
}

// startBehindLB renders the behind-LB listen file for cidr with
// deploy/nginx-lb-listen.sh and runs nginx with it on the bridge network,
// published on a loopback port.
func startBehindLB(t *testing.T, root, image, cidr, upMount, sockMount string) behindLB {
	t.Helper()
	out, err := exec.Command("sh", filepath.Join(root, "deploy", "nginx-lb-listen.sh"), cidr,
		filepath.Join(root, "nginx-templates", "listen-behind-lb.conf")).Output()
	if err != nil {
		t.Fatalf("nginx-lb-listen.sh %s: %v", cidr, err)
	}
	listen := filepath.Join(t.TempDir(), "listen.conf")
	if err := os.WriteFile(listen, out, 0o644); err != nil {
		t.Fatal(err)
	}
	name := "mywebchat-delivery-test-lb-" + randSuffix(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		docker(ctx, "rm", "-f", name)
	})
	args := append([]string{"run", "-d", "--name", name, "-p", "127.0.0.1::80",
		"-v", upMount, "-v", sockMount, "-v", listen + ":/etc/nginx/mywebchat/listen.conf:ro"}, nginxHardening...)
	mustDocker(t, append(args, image)...)
	hostPort := mustDocker(t, "port", name, "80/tcp")
	_, port, err := net.SplitHostPort(strings.Split(hostPort, "\n")[0])
	if err != nil {
		t.Fatalf("docker port %q: %v", hostPort, err)
	}
	lb := behindLB{name: name, base: "http://127.0.0.1:" + port}
	waitHTTP(t, lb.base+"/", http.StatusOK, 20*time.Second)
	return lb
}

// remote reads the client address nginx logged for the request to uri (its
// access log is JSON on stdout), waiting briefly for the line to appear.
func (lb behindLB) remote(t *testing.T, uri string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		logs, err := docker(t.Context(), "logs", lb.name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(logs, "\n") {
			var e struct{ Remote, URI string }
			if json.Unmarshal([]byte(line), &e) == nil && e.URI == uri {
				return e.Remote
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log line for %s in:\n%s", uri, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get sends a GET with the given headers and expects a 200.
func get(t *testing.T, url string, headers map[string]string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
}

// nginxVersion is the version `nginx -v` reports in image, e.g. "1.27.5".
func nginxVersion(t *testing.T, image string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "docker", "run", "--rm", image, "nginx", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -v in %s: %v %s", image, err, out)
	}
	_, v, ok := strings.Cut(strings.TrimSpace(string(out)), "nginx/")
	if !ok {
		t.Fatalf("nginx -v in %s: unexpected %q", image, out)
	}
	return strings.Fields(v)[0]
}

// atLeast reports whether the dotted version v is at least major.minor.patch.
func atLeast(v string, want ...int) bool {
	parts := strings.Split(v, ".")
	for i, w := range want {
		n := 0
		if i < len(parts) {
			fmt.Sscanf(parts[i], "%d", &n)
		}
		if n != w {
			return n > w
		}
	}
	return true
}
