//go:build integration

package fleet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// repoRoot is the module root, two folders up from test/fleet.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

var (
	buildMu  sync.Mutex
	buildDir string
	built    = map[string]bool{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// packages are the binaries tests may ask for, by name.
var packages = map[string]string{"chatserver": "./chatserver", "deploy-agent": "./agent/cmd/deploy-agent"}

// binary builds one of packages once per test run and returns its path.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		d, err := os.MkdirTemp("", "fleet-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, name)
	if built[name] {
		return out
	}
	cmd := exec.Command("go", "build", "-o", out, packages[name])
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", packages[name], err, b)
	}
	built[name] = true
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a child process whose output goes to a log file shown on failure.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startProc(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("--- %s log (tail) ---\n%s", name, tail(b, 3000))
		}
	})
	return p
}

func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
	default:
		// The whole group: nginx's workers go with their master.
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stop sends SIGTERM and waits up to timeout for a clean exit.
func (p *proc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s exited with %v after SIGTERM, want 0", p.name, p.err)
		}
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s of SIGTERM", p.name, timeout)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// waitHTTP polls url until it answers 200 or timeout passes.
func waitHTTP(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy after %s (last: %v)", url, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startRedis runs a real redis-server on a free loopback port, persisted
// with an append-only file in a temp folder.
func startRedis(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is required (scripts/setup.sh installs it): %v", err)
	}
	dir := t.TempDir()
	port := freePort(t)
	startProc(t, dir, "redis", os.Environ(), "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: addr})
		err := c.Ping(context.Background()).Err()
		_ = c.Close()
		if err == nil {
			return "redis://" + addr + "/0"
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not answer: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// nginxConf is a minimal front proxy with the site's WebSocket headers and
// every chat instance in one upstream. An upgrade refused with 503 by a
// draining instance is retried on the next one, like a load balancer that
// has not yet deregistered the instance.
const nginxConf = `worker_processes 1;
error_log {{dir}}/error.log warn;
pid {{dir}}/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path {{dir}}/body;
    proxy_temp_path {{dir}}/proxy;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    upstream chat {
{{servers}}    }
    server {
        listen 127.0.0.1:{{port}};
        location = /ws {
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
            proxy_read_timeout 75s;
        }
        location = /healthz {
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503;
        }
    }
}
`

// startNginx runs host nginx with its own prefix in front of ports.
func startNginx(t *testing.T, ports ...int) (port int) {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatalf("nginx is required (scripts/setup.sh installs it): %v", err)
	}
	dir := t.TempDir()
	port = freePort(t)
	var servers bytes.Buffer
	for _, p := range ports {
		fmt.Fprintf(&servers, "        server 127.0.0.1:%d max_fails=1 fail_timeout=2s;\n", p)
	}
	conf := strings.NewReplacer("{{dir}}", dir, "{{port}}", strconv.Itoa(port), "{{servers}}", servers.String()).Replace(nginxConf)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("nginx", "-t", "-p", dir, "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, b)
	}
	startProc(t, dir, "nginx", os.Environ(), "nginx", "-p", dir, "-c", path, "-g", "daemon off;")
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 10*time.Second)
	return port
}
