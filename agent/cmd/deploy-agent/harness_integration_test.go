//go:build integration

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/deploy"
	"github.com/mywebchat/mywebchat/agent/internal/queue"
	"github.com/mywebchat/mywebchat/agent/internal/state"
	nginxtemplates "github.com/mywebchat/mywebchat/nginx-templates"
)

// The images and binary every test shares, built once in TestMain.
var (
	agentBin string
	repo     = "mywebchat/agent-it"
	runID    string
	imgV1    string // the chat server built from Dockerfile.app
	imgV2    string // the same with another label: a second image ID
	imgV3    string // a third image ID (pruning)
	imgFail  string // never healthy: logs a reason and exits
	// imgKeep tags v1's image in another repository: pruning must leave it alone.
	imgKeep string
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "integration tests need a running Docker engine: %v: %s\n", err, out)
		return 1
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		fmt.Fprintln(os.Stderr, "integration tests need nginx on PATH:", err)
		return 1
	}
	tmp, err := os.MkdirTemp("", "agent-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	var b [4]byte
	_, _ = rand.Read(b[:])
	runID = hex.EncodeToString(b[:])
	imgV1, imgV2, imgV3, imgFail = repo+":"+runID+"-v1", repo+":"+runID+"-v2", repo+":"+runID+"-v3", repo+":"+runID+"-fail"
	imgKeep = "mywebchat/agent-it-keep:" + runID
	defer func() {
		for _, img := range []string{imgV1, imgV2, imgV3, imgFail, imgKeep} {
			_ = exec.Command("docker", "rmi", img).Run() // our tags only, never forced
		}
	}()

	agentBin = filepath.Join(tmp, "deploy-agent")
	steps := [][]string{{"go", "build", "-o", agentBin, "./agent/cmd/deploy-agent"}}
	if base := os.Getenv("AGENT_IT_APP_IMAGE"); base != "" {
		// A chat server image already built from Dockerfile.app (e.g. mywebchat/app:dev by
		// `make images`): tag it instead of building again.
		steps = append(steps, []string{"docker", "tag", base, imgV1})
	} else {
		steps = append(steps, []string{"docker", "build", "--network", "host", "-q", "-f", "Dockerfile.app", "--build-arg", "GO_IMAGE=mywebchat/go-builder:local", "-t", imgV1, "."})
	}
	steps = append(steps, []string{"docker", "tag", imgV1, imgKeep})
	for _, s := range steps {
		cmd := exec.Command(s[0], s[1:]...)
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n%s\n", strings.Join(s, " "), err, out)
			return 1
		}
	}
	for img, label := range map[string]string{imgV2: "2", imgV3: "3"} {
		if err := dockerBuild("FROM "+imgV1+"\n", "", "-t", img, "--label", "agent-it.rev="+runID+"-"+label); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	failDir := filepath.Join(tmp, "failapp")
	cmd := exec.Command("go", "build", "-o", filepath.Join(failDir, "failapp"), "./agent/cmd/deploy-agent/testdata/failapp")
	cmd.Dir, cmd.Env = repoRoot(), append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build failapp: %v\n%s\n", err, out)
		return 1
	}
	if err := dockerBuild("FROM scratch\nCOPY failapp /failapp\nUSER 65532:65532\nENTRYPOINT [\"/failapp\"]\n", failDir, "-t", imgFail); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// dockerBuild builds dockerfile with contextDir ("" for none) and extra args.
func dockerBuild(dockerfile, contextDir string, args ...string) error {
	if contextDir == "" {
		d, err := os.MkdirTemp("", "agent-it-ctx-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		contextDir = d
	}
	if err := os.WriteFile(filepath.Join(contextDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		return err
	}
	cmd := exec.Command("docker", append([]string{"build", "-q", "--network", "host"}, append(args, contextDir)...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build %v: %v\n%s", args, err, out)
	}
	return nil
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

// host is one simulated EC2 host: an app name, a state dir, ports, an nginx and the agent process.
type host struct {
	t          *testing.T
	mode       string
	app        string
	dir        string
	stateDir   string
	config     string
	template   string
	nginxPort  int
	bluePort   int
	greenPort  int
	keep       int
	nginxName  string // container mode
	nginxConf  string
	agent      *exec.Cmd
	agentDone  chan struct{}
	agentLog   *os.File
	startTmout string
}

type hostOpts struct {
	mode         string
	keep         int
	startTimeout string
}

func newHost(t *testing.T, o hostOpts) *host {
	t.Helper()
	var b [3]byte
	_, _ = rand.Read(b[:])
	h := &host{
		t: t, mode: o.mode, app: "agentit-" + hex.EncodeToString(b[:]), dir: t.TempDir(), keep: o.keep, startTmout: o.startTimeout,
		nginxPort: freePort(t), bluePort: freePort(t), greenPort: freePort(t),
	}
	if h.keep == 0 {
		h.keep = 3
	}
	if h.startTmout == "" {
		h.startTmout = "20s"
	}
	// Pruning in an earlier test may have removed v1's tag in our repository; imgKeep holds it.
	if out, err := exec.Command("docker", "tag", imgKeep, imgV1).CombinedOutput(); err != nil {
		t.Fatalf("tag %s: %v %s", imgV1, err, out)
	}
	h.stateDir = filepath.Join(h.dir, "state")
	h.config = filepath.Join(h.dir, "agent.yaml")
	h.template = filepath.Join(h.dir, "upstream.conf.tmpl")
	tmpl, _ := nginxtemplates.FS.ReadFile(nginxtemplates.Upstream)
	if err := os.WriteFile(h.template, tmpl, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.stopAgent()
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=mywebchat.app="+h.app).Output()
		out2, _ := exec.Command("docker", "ps", "-aq", "--filter", "label=agent-it.app="+h.app).Output()
		if ids := strings.Fields(string(out) + " " + string(out2)); len(ids) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
		if t.Failed() && h.agentLog != nil {
			b, _ := os.ReadFile(h.agentLog.Name())
			t.Logf("agent log:\n%s", tail(string(b), 6000))
		}
	})
	h.writeNginxConf()
	h.writeConfig()
	return h
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (h *host) upstreamPath() string { return filepath.Join(h.stateDir, "nginx", "upstream.conf") }

// holdPath is the agent's step-hold file (DEPLOY_AGENT_TEST_HOLD_FILE): while it names a step, a
// deploy that reaches that step waits there.
func (h *host) holdPath() string { return filepath.Join(h.dir, "hold") }

// holdAt makes the next deploy wait at step until the returned release is called.
func (h *host) holdAt(step string) (release func()) {
	h.t.Helper()
	if err := os.WriteFile(h.holdPath(), []byte(step), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return func() {
		if err := os.Remove(h.holdPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
			h.t.Fatal(err)
		}
	}
}

// waitUpstream polls the upstream file until ok accepts it and returns it.
func (h *host) waitUpstream(ok func([]byte) bool) []byte {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var b []byte
	for time.Now().Before(deadline) {
		b, _ = os.ReadFile(h.upstreamPath())
		if ok(b) {
			return b
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("upstream file never became what was wanted; last:\n%s", b)
	return nil
}

// logCount counts the agent log's lines that contain s.
func (h *host) logCount(s string) int {
	b, _ := os.ReadFile(filepath.Join(h.dir, "agent.log"))
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// waitLog polls the agent log until at least n lines contain s.
func (h *host) waitLog(s string, n int) {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.logCount(s) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("agent log: fewer than %d lines with %q within 30s", n, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitStep polls status until deploy id is in progress at step.
func (h *host) waitStep(id, step string) {
	h.t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last *deploy.Deploying
	for time.Now().Before(deadline) {
		st := h.status()
		if d := st.Deploying; d != nil && d.ID == id && d.Step == step {
			return
		}
		last = st.Deploying
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("deploy %s never reached step %s (last in progress: %+v)", id, step, last)
}

// writeNginxConf writes a minimal nginx config that proxies everything to upstream chat, the way
// the site config does, retries included.
func (h *host) writeNginxConf() {
	prefix := filepath.Join(h.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		h.t.Fatal(err)
	}
	tmp := prefix
	pid := filepath.Join(prefix, "nginx.pid")
	if h.mode == "container" {
		tmp, pid = "/tmp", "/tmp/nginx.pid"
	}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s;
error_log stderr warn;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path %[2]s/body; proxy_temp_path %[2]s/proxy; fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi; scgi_temp_path %[2]s/scgi;
    include %[3]s;
    server {
        listen 127.0.0.1:%[4]d;
        location / {
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # As the shipped locations: a draining color's 503 or refused connection is
            # answered by the upstream's backup, the other color.
            proxy_next_upstream error timeout http_503;
            proxy_next_upstream_tries 2;
        }
    }
}
`, pid, tmp, h.upstreamPath(), h.nginxPort)
	h.nginxConf = filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(h.nginxConf, []byte(conf), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) writeConfig() {
	prefix := filepath.Dir(h.nginxConf)
	proxy := fmt.Sprintf(`  mode: host
  test_command: [nginx, -p, %[1]s, -c, %[2]s, -t]
  reload_command: [nginx, -p, %[1]s, -c, %[2]s, -s, reload]`, prefix, h.nginxConf)
	if h.mode == "container" {
		h.nginxName = h.app + "-nginx"
		proxy = "  mode: container\n  container: " + h.nginxName
	}
	cfg := fmt.Sprintf(`state_dir: %s
app:
  name: %s
  repository: %s
  container_port: 8080
  colors: {blue: {port: %d}, green: {port: %d}}
  env: {CHAT_HISTORY: "50"}
  env_file: %s/app.env
  memory: 128m
  health: {path: /healthz, interval: 100ms, timeout: 1s, healthy_after: 2, start_timeout: %s}
  drain_timeout: 5s
  verify: 5s
  keep_releases: %d
proxy:
%s
  template: %s
  output: %s
  check_url: http://127.0.0.1:%d/healthz
`, h.stateDir, h.app, repo, h.bluePort, h.greenPort, h.dir, h.startTmout, h.keep, proxy, h.template, h.upstreamPath(), h.nginxPort)
	if err := os.WriteFile(h.config, []byte(cfg), 0o600); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.dir, "app.env"), []byte("# test env\nCHAT_DRAIN_TIMEOUT=2s\n"), 0o600); err != nil {
		h.t.Fatal(err)
	}
}

// startAgent runs `deploy-agent run` as a real process; crashAt arms the crash hook.
func (h *host) startAgent(crashAt string) {
	h.t.Helper()
	f, err := os.OpenFile(filepath.Join(h.dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		h.t.Fatal(err)
	}
	h.agentLog = f
	cmd := exec.Command(agentBin, "--config", h.config, "run")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), "DEPLOY_AGENT_TEST_CRASH_AT="+crashAt, "DEPLOY_AGENT_TEST_HOLD_FILE="+h.holdPath())
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.agent = cmd
	done := make(chan struct{})
	h.agentDone = done
	go func() { _ = cmd.Wait(); close(done) }()
	q := queue.Queue{StateDir: h.stateDir}
	deadline := time.Now().Add(30 * time.Second)
	for !q.AgentRunning() {
		if time.Now().After(deadline) {
			h.t.Fatal("agent did not take its lock within 30s")
		}
		select {
		case <-done:
			b, _ := os.ReadFile(f.Name())
			h.t.Fatalf("agent exited at start:\n%s", tail(string(b), 3000))
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The lock is taken before the first reconcile: wait until the upstream file exists.
	for {
		if _, err := os.Stat(h.upstreamPath()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatal("agent wrote no upstream file within 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopAgent sends SIGTERM and waits for a clean exit.
func (h *host) stopAgent() {
	if h.agent == nil {
		return
	}
	select {
	case <-h.agentDone:
	default:
		_ = h.agent.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.agentDone:
		case <-time.After(60 * time.Second):
			_ = h.agent.Process.Kill()
			<-h.agentDone
		}
	}
	h.agent = nil
}

// startNginx starts the proxy for the mode once the agent has written the upstream file.
func (h *host) startNginx() {
	h.t.Helper()
	if h.mode == "container" {
		// The data path: the colors' sockets under <state_dir>/sockets, as the host's unit mounts them.
		sockets := filepath.Join(h.stateDir, "sockets")
		if err := os.MkdirAll(sockets, 0o711); err != nil {
			h.t.Fatal(err)
		}
		out, err := exec.Command("docker", "run", "-d", "--name", h.nginxName, "--network", "host",
			"--label", "agent-it.app="+h.app, // so cleanup finds it
			"-v", filepath.Dir(h.nginxConf)+":"+filepath.Dir(h.nginxConf)+":ro",
			"-v", filepath.Dir(h.upstreamPath())+":"+filepath.Dir(h.upstreamPath())+":ro",
			"-v", sockets+":"+sockets+":ro",
			"mywebchat/debian-base:local", "nginx", "-g", "daemon off;", "-c", h.nginxConf).CombinedOutput()
		if err != nil {
			h.t.Fatalf("start nginx container: %v: %s", err, out)
		}
	} else {
		prefix := filepath.Dir(h.nginxConf)
		// nginx daemonizes and its master keeps stdout/stderr: give it a file, not a pipe that
		// would never reach EOF.
		logf, err := os.Create(filepath.Join(prefix, "start.log"))
		if err != nil {
			h.t.Fatal(err)
		}
		defer logf.Close()
		cmd := exec.Command("nginx", "-p", prefix, "-c", h.nginxConf)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Run(); err != nil {
			b, _ := os.ReadFile(logf.Name())
			h.t.Fatalf("start nginx: %v: %s", err, b)
		}
		h.t.Cleanup(func() { _ = exec.Command("nginx", "-p", prefix, "-c", h.nginxConf, "-s", "stop").Run() })
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", h.nginxPort), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("nginx does not listen on %d", h.nginxPort)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cli runs a deploy-agent client command and returns stdout, stderr and the exit code.
func (h *host) cli(args ...string) (string, string, int) {
	h.t.Helper()
	return runCLI(h.t, h.config, args...)
}

func runCLI(t *testing.T, config string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentBin, append([]string{"--config", config}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (h *host) mustDeploy(image string) string {
	h.t.Helper()
	out, errOut, code := h.cli("deploy", "--image", image)
	if code != 0 {
		h.t.Fatalf("deploy %s: exit %d\nstdout:\n%s\nstderr:\n%s", image, code, out, errOut)
	}
	return out
}

func (h *host) status() deploy.Status {
	h.t.Helper()
	out, errOut, code := h.cli("status", "--json")
	if code != 0 {
		h.t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var st deploy.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		h.t.Fatalf("status --json %q: %v", out, err)
	}
	return st
}

func (h *host) history() []state.Record {
	h.t.Helper()
	out, errOut, code := h.cli("history", "--json", "-n", "0")
	if code != 0 {
		h.t.Fatalf("history: exit %d: %s", code, errOut)
	}
	var recs []state.Record
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		h.t.Fatalf("history --json: %v", err)
	}
	return recs
}

// servedColor asks through nginx which color answers.
func (h *host) servedColor() (string, error) {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", h.nginxPort))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct{ Color string }
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return "", err
	}
	return body.Color, nil
}

// runningColors lists the colors of this app with a running container.
func (h *host) runningColors() []string {
	out, err := exec.Command("docker", "ps", "--filter", "label=mywebchat.app="+h.app, "--format", `{{.Label "mywebchat.color"}}`).Output()
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// load sends steady GETs through nginx until stopped (bounded by count and time) and counts failures.
type load struct {
	ok, failed atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
	mu         sync.Mutex
	errs       []string
}

// loadInterval and loadMax bound the steady load: 50 requests per second, at most 90 s.
const (
	loadInterval = 20 * time.Millisecond
	loadMax      = 4500
)

func (h *host) startLoad() *load {
	l := &load{stop: make(chan struct{})}
	url := fmt.Sprintf("http://127.0.0.1:%d/healthz", h.nginxPort)
	c := &http.Client{Timeout: 3 * time.Second}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(loadInterval)
		defer t.Stop()
		for i := 0; i < loadMax; i++ {
			select {
			case <-l.stop:
				return
			case <-t.C:
			}
			resp, err := c.Get(url)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					l.ok.Add(1)
					continue
				}
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			l.failed.Add(1)
			l.mu.Lock()
			if len(l.errs) < 10 {
				l.errs = append(l.errs, err.Error())
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *load) finish() (ok, failed int64, errs []string) {
	close(l.stop)
	l.wg.Wait()
	return l.ok.Load(), l.failed.Load(), l.errs
}
