//go:build integration

package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// host is one simulated EC2 host: its own deploy-agent daemon, state dir,
// app name (so its own container names), color ports, env file and host
// nginx.
type host struct {
	name      string
	dir       string
	app       string
	nginxPort int
	agent     *proc
}

func (h *host) config() string  { return filepath.Join(h.dir, "agent.yaml") }
func (h *host) envFile() string { return filepath.Join(h.dir, "app.env") }

// hostNginxConf proxies /healthz and /ws to the upstream the agent writes.
const hostNginxConf = `worker_processes 1;
error_log {{dir}}/error.log warn;
pid {{dir}}/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path {{dir}}/body;
    proxy_temp_path {{dir}}/proxy;
    include {{dir}}/upstream.conf;
    server {
        listen 127.0.0.1:{{port}};
        location = /healthz {
            proxy_pass http://chat;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`

// agentConf is shaped like deploy/agent.yaml with this host's names, ports
// and folders, host-mode nginx and short timings.
const agentConf = `state_dir: {{dir}}/state
app:
  name: {{app}}
  repository: {{repo}}
  container_port: 8080
  colors: {blue: {port: {{blue}}}, green: {port: {{green}}}}
  env_file: {{dir}}/app.env
  health: {path: /healthz, interval: 250ms, timeout: 2s, healthy_after: 2, start_timeout: 8s}
  drain_timeout: 5s
  verify: 1s
  keep_releases: 3
proxy:
  mode: host
  test_command: [nginx, -t, -q, -p, {{dir}}/nginx, -c, {{dir}}/nginx/nginx.conf]
  reload_command: [nginx, -s, reload, -p, {{dir}}/nginx, -c, {{dir}}/nginx/nginx.conf]
  output: {{dir}}/nginx/upstream.conf
  check_url: http://127.0.0.1:{{port}}/healthz
`

func newHost(t *testing.T, agentBin, id, repo string, n int) *host {
	t.Helper()
	h := &host{name: fmt.Sprintf("host%d", n), app: fmt.Sprintf("fleet%sh%d", id, n), nginxPort: freePort(t)}
	h.dir = filepath.Join(t.TempDir(), h.name)
	ngx := filepath.Join(h.dir, "nginx")
	if err := os.MkdirAll(ngx, 0o700); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("{{dir}}", h.dir, "{{app}}", h.app, "{{repo}}", repo,
		"{{blue}}", fmt.Sprint(freePort(t)), "{{green}}", fmt.Sprint(freePort(t)), "{{port}}", fmt.Sprint(h.nginxPort))
	writeFile(t, h.config(), r.Replace(agentConf))
	writeFile(t, h.envFile(), "")
	writeFile(t, filepath.Join(ngx, "nginx.conf"), strings.NewReplacer("{{dir}}", ngx, "{{port}}", fmt.Sprint(h.nginxPort)).Replace(hostNginxConf))
	// Until the agent writes the real upstream, a placeholder lets nginx start.
	writeFile(t, filepath.Join(ngx, "upstream.conf"), "upstream chat { server 127.0.0.1:1; }\n")
	startProc(t, ngx, "nginx", os.Environ(), "nginx", "-p", ngx, "-c", filepath.Join(ngx, "nginx.conf"), "-g", "daemon off;")
	t.Cleanup(func() {
		// The containers are this host's own (its app name); remove them.
		for _, c := range []string{h.app + "-blue", h.app + "-green"} {
			_ = exec.Command("docker", "rm", "-f", c).Run()
		}
	})
	h.agent = startProc(t, h.dir, "agent", append(os.Environ(), "DEPLOY_AGENT_CONFIG="+h.config()), agentBin, "run")
	// The daemon is up once status answers with anything but 4 (not running).
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := exec.Command(agentBin, "--config", h.config(), "status").Run()
		if code := exitCode(err); code != 4 && code != -1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: agent did not start (status: %v)", h.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return h
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

type release struct {
	Color   string `json:"color"`
	Image   string `json:"image"`
	Healthy bool   `json:"healthy"`
}

type status struct {
	Active   *release `json:"active"`
	Previous *release `json:"previous"`
}

func (h *host) status(t *testing.T, agentBin string) status {
	t.Helper()
	out, err := exec.Command(agentBin, "--config", h.config(), "status", "--json").Output()
	if err != nil {
		t.Fatalf("%s: status: %v", h.name, err)
	}
	var s status
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("%s: status --json: %v\n%s", h.name, err, out)
	}
	return s
}

func (h *host) history(t *testing.T, agentBin string) []map[string]any {
	t.Helper()
	out, err := exec.Command(agentBin, "--config", h.config(), "history", "--json").Output()
	if err != nil {
		t.Fatalf("%s: history: %v", h.name, err)
	}
	var recs []map[string]any
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatalf("%s: history --json: %v\n%s", h.name, err, out)
	}
	return recs
}

// serving returns the version the host's nginx answers /healthz with.
func (h *host) serving(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", h.nginxPort))
	if err != nil {
		t.Fatalf("%s: /healthz through nginx: %v", h.name, err)
	}
	defer resp.Body.Close()
	var body struct{ Status, Version string }
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &body) != nil {
		t.Fatalf("%s: /healthz through nginx: %d %s", h.name, resp.StatusCode, b)
	}
	return body.Version
}

// buildImages builds two releases of the chat server (scratch + the static
// binary, like Dockerfile.app) that differ only by a label, so each has its
// own image ID.
func buildImages(t *testing.T, repo string) {
	t.Helper()
	dir := t.TempDir()
	bin := binary(t, "chatserver")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chatserver"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		df := fmt.Sprintf("FROM scratch\nCOPY chatserver /chatserver\nUSER 65532:65532\nEXPOSE 8080\nLABEL fleet.release=%s\nENTRYPOINT [\"/chatserver\"]\n", v)
		writeFile(t, filepath.Join(dir, "Dockerfile."+v), df)
		cmd := exec.Command("docker", "build", "-q", "-f", filepath.Join(dir, "Dockerfile."+v), "-t", repo+":"+v, dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker build %s: %v\n%s", v, err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("docker", "rmi", "-f", repo+":v1", repo+":v2").Run()
	})
}

// rollout runs rollout.sh one host at a time and returns its output and exit code.
func rollout(t *testing.T, agentBin string, args ...string) (string, int) {
	t.Helper()
	return rolloutBatch(t, agentBin, 1, args...)
}

// rolloutBatch runs rollout.sh with batch hosts at once.
func rolloutBatch(t *testing.T, agentBin string, batch int, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{"rollout.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "DEPLOY_AGENT="+agentBin, "ROLLOUT_TIMEOUT=2m", fmt.Sprintf("ROLLOUT_BATCH=%d", batch))
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	out, err := cmd.CombinedOutput()
	code := exitCode(err)
	if code == -1 {
		t.Fatalf("rollout.sh %v: %v\n%s", args, err, out)
	}
	return string(out), code
}

// expectFleet checks rollout.sh's summary line of each host and what each serves.
func expectFleet(t *testing.T, out string, hosts []*host, outcomes, serving []string) {
	t.Helper()
	for i, h := range hosts {
		if want := "rollout: " + h.name + " " + outcomes[i]; !strings.Contains(out, want) {
			t.Errorf("rollout output lacks %q", want)
		}
		if v := h.serving(t); v != serving[i] {
			t.Errorf("%s serves %q, want %q", h.name, v, serving[i])
		}
	}
}

// TestRolloutStopsAtFailingHost: v1 goes to three hosts; then v2 is rolled
// out while host 2 is configured so the new container cannot pass its health
// gate. The rollout must stop at host 2 with the agent's exit code 1: host 1
// serves v2, host 2 still serves v1 (the agent rolled it back itself), and
// host 3 was never touched. Rolling back host 1 makes the fleet uniform again.
func TestRolloutStopsAtFailingHost(t *testing.T) {
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Fatalf("the Docker engine is required (scripts/setup.sh starts it): %v", err)
	}
	agentBin := binary(t, "deploy-agent")
	id := strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000"), ".", ""))
	repo := "mywebchat/fleet" + id + "-app"
	buildImages(t, repo)
	var hosts []*host
	var configs []string
	for n := 1; n <= 3; n++ {
		h := newHost(t, agentBin, id, repo, n)
		hosts = append(hosts, h)
		configs = append(configs, h.config())
	}

	out, code := rollout(t, agentBin, append([]string{"deploy", repo + ":v1"}, configs...)...)
	if code != 0 {
		t.Fatalf("rollout of v1: exit %d, want 0\n%s", code, out)
	}
	for _, h := range hosts {
		if v := h.serving(t); v != "v1" {
			t.Fatalf("%s serves %q after the v1 rollout, want v1", h.name, v)
		}
	}

	// Host 2 gets a configuration the new release cannot start with: the chat
	// server refuses a malformed CHAT_HISTORY, so its health gate fails.
	writeFile(t, hosts[1].envFile(), "CHAT_HISTORY=not-a-number\n")
	out, code = rollout(t, agentBin, append([]string{"deploy", repo + ":v2"}, configs...)...)
	t.Logf("rollout of v2:\n%s", out)
	if code != 1 {
		t.Fatalf("rollout of v2: exit %d, want 1 (host 2 failed and rolled back)", code)
	}
	expectFleet(t, out, hosts, []string{"deployed", "failed (exit 1)", "skipped"}, []string{"v2", "v1", "v1"})
	if s := hosts[1].status(t, agentBin); s.Active == nil || s.Active.Image != repo+":v1" || !s.Active.Healthy {
		t.Errorf("host2 status %+v, want v1 active and healthy", s.Active)
	}
	if recs := hosts[2].history(t, agentBin); len(recs) != 1 {
		t.Errorf("host3 has %d deploy records, want 1 (untouched by the v2 rollout)", len(recs))
	}
	if recs := hosts[1].history(t, agentBin); len(recs) < 2 || recs[0]["result"] == "succeeded" {
		t.Errorf("host2 newest record %v, want a failed v2 deploy", recs[0])
	}

	// Roll the fleet back to one version: host 1 goes back to v1.
	out, code = rollout(t, agentBin, "rollback", hosts[0].config())
	if code != 0 {
		t.Fatalf("rollback of host1: exit %d, want 0\n%s", code, out)
	}
	for _, h := range hosts {
		if v := h.serving(t); v != "v1" {
			t.Errorf("%s serves %q after the rollback, want v1", h.name, v)
		}
	}
	if s := hosts[0].status(t, agentBin); s.Active == nil || s.Active.Image != repo+":v1" {
		t.Errorf("host1 status %+v after rollback, want v1 active", s.Active)
	}

	// In batches of two (DEPLOY_MAX_CONCURRENCY=2), with host 1 failing: its
	// batch mate host 2 still finishes, host 3 is never started.
	writeFile(t, hosts[1].envFile(), "")
	writeFile(t, hosts[0].envFile(), "CHAT_HISTORY=not-a-number\n")
	out, code = rolloutBatch(t, agentBin, 2, append([]string{"deploy", repo + ":v2"}, configs...)...)
	t.Logf("rollout of v2 in batches of 2:\n%s", out)
	if code != 1 {
		t.Fatalf("batched rollout of v2: exit %d, want 1 (host 1 failed and rolled back)", code)
	}
	expectFleet(t, out, hosts, []string{"failed (exit 1)", "deployed", "skipped"}, []string{"v1", "v2", "v1"})
	for _, h := range hosts {
		h.agent.stop(t, 15*time.Second)
	}
}
