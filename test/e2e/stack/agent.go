package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Agent is the deploy agent under test: the binary built from this checkout,
// a test-specific config, and the daemon (`deploy-agent run`) as a child
// process.
type Agent struct {
	Bin        string // path of the deploy-agent binary
	Dir        string // holds agent.yaml, the state dir and the daemon log
	App        string // app.name, also the container name prefix
	Repository string
	BluePort   int
	GreenPort  int
	Nginx      *Nginx
	Verify     time.Duration // app.verify; zero means 5s, as in deploy/agent.yaml
	Drain      time.Duration // app.drain_timeout; zero means 30s
	Network    string        // app.network; empty for the default bridge
	// HealthyAfter is app.health.healthy_after; zero means 2, as in deploy/agent.yaml.
	HealthyAfter int
	Env          map[string]string // app.env

	daemon *exec.Cmd
	exited chan error
	logf   *os.File
}

// BuildAgent compiles the agent into dir and returns the binary's path.
func BuildAgent(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "deploy-agent")
	if _, err := runIn(ctx, root, nil, "go", "build", "-o", bin, "./agent/cmd/deploy-agent"); err != nil {
		return "", fmt.Errorf("build agent: %w", err)
	}
	return bin, nil
}

// ConfigPath is the agent's config file.
func (a *Agent) ConfigPath() string { return filepath.Join(a.Dir, "agent.yaml") }

// StateDir is the agent's state_dir.
func (a *Agent) StateDir() string { return filepath.Join(a.Dir, "state") }

// LogPath is where the daemon's output goes.
func (a *Agent) LogPath() string { return filepath.Join(a.Dir, "daemon.log") }

// Containers implements Deployer.
func (a *Agent) Containers() []string { return []string{a.App + "-blue", a.App + "-green"} }

// Name implements Deployer.
func (a *Agent) Name() string { return "deploy-agent" }

// WriteConfig writes agent.yaml in the shape of deploy/agent.yaml, with
// this run's names, ports and folders.
func (a *Agent) WriteConfig() error {
	verify, drain, healthyAfter := a.Verify, a.Drain, a.HealthyAfter
	if healthyAfter == 0 {
		healthyAfter = 2
	}
	if verify == 0 {
		verify = 5 * time.Second
	}
	if drain == 0 {
		drain = 30 * time.Second
	}
	cfg := fmt.Sprintf(`# end-to-end harness config, shaped like deploy/agent.yaml
state_dir: %s
app:
  name: %s
  repository: %s
  container_port: 8080
  colors: {blue: {port: %d}, green: {port: %d}}
  health: {path: /healthz, interval: 250ms, timeout: 2s, healthy_after: %d, start_timeout: 20s}
  drain_timeout: %s
  verify: %s
  keep_releases: 5
%sproxy:
  mode: container
  container: %s
  output: %s
  check_url: %s/healthz
`, a.StateDir(), a.App, a.Repository, a.BluePort, a.GreenPort, healthyAfter, drain, verify, a.appExtra(), a.Nginx.Name, a.Nginx.UpstreamFile(), a.Nginx.URL())
	if err := os.MkdirAll(a.Dir, 0o700); err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	if err := os.WriteFile(a.ConfigPath(), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("agent config: %w", err)
	}
	return nil
}

// appExtra renders the optional app keys.
func (a *Agent) appExtra() string {
	var b strings.Builder
	if a.Network != "" {
		fmt.Fprintf(&b, "  network: %s\n", a.Network)
	}
	if len(a.Env) > 0 {
		b.WriteString("  env:\n")
		keys := slices.Sorted(maps.Keys(a.Env))
		for _, k := range keys {
			// A Go-quoted string is a valid YAML double-quoted scalar for these values.
			fmt.Fprintf(&b, "    %s: %s\n", k, strconv.Quote(a.Env[k]))
		}
	}
	return b.String()
}

// env is the environment every agent command gets.
func (a *Agent) env() []string {
	return []string{"DEPLOY_AGENT_CONFIG=" + a.ConfigPath(), "PATH=" + filepath.Dir(a.Bin) + ":" + os.Getenv("PATH")}
}

// Start runs `deploy-agent run` and waits until `status` answers (exit 0)
// or, before any release, something other than 4 (agent not running).
func (a *Agent) Start(ctx context.Context) error { return a.start(ctx, "") }

// StartCrashingAt is Start with the agent's crash hook armed: the daemon
// SIGKILLs itself as the next deploy starts step (after journaling it).
func (a *Agent) StartCrashingAt(ctx context.Context, step string) error { return a.start(ctx, step) }

// WaitExit waits up to timeout for the daemon to exit by itself (the crash
// hook) and reports how it ended.
func (a *Agent) WaitExit(timeout time.Duration) error {
	if a.daemon == nil {
		return errors.New("agent not started")
	}
	select {
	case err := <-a.exited:
		a.daemon = nil
		a.logf.Close()
		return err
	case <-time.After(timeout):
		return fmt.Errorf("agent still running after %s", timeout)
	}
}

// ProgressStep reads the deploy in flight from the state dir as a crashed
// agent left it: its id and step, or empty strings when none.
func (a *Agent) ProgressStep() (id, step string, err error) {
	b, err := os.ReadFile(filepath.Join(a.StateDir(), "progress.json"))
	if errors.Is(err, os.ErrNotExist) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	var p struct{ ID, Step string }
	if err := json.Unmarshal(b, &p); err != nil {
		return "", "", fmt.Errorf("progress.json: %w", err)
	}
	return p.ID, p.Step, nil
}

func (a *Agent) start(ctx context.Context, crashAt string) error {
	f, err := os.OpenFile(a.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("agent start: %w", err)
	}
	cmd := exec.Command(a.Bin, "run")
	cmd.Env = append(os.Environ(), a.env()...)
	if crashAt != "" {
		cmd.Env = append(cmd.Env, "DEPLOY_AGENT_TEST_CRASH_AT="+crashAt)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("agent start: %w", err)
	}
	a.daemon, a.logf, a.exited = cmd, f, make(chan error, 1)
	go func() { a.exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-a.exited:
			a.daemon = nil
			return fmt.Errorf("agent exited at start: %v: %s", err, a.LogTail(30))
		default:
		}
		r := a.Command(ctx, "status")
		if r.Exit != 4 && r.Exit != -1 {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("agent did not come up within 30s: %s", a.LogTail(30))
}

// Running reports whether the daemon process is alive.
func (a *Agent) Running() bool {
	if a.daemon == nil {
		return false
	}
	select {
	case err := <-a.exited:
		a.exited <- err
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to 40 s (a deploy in progress may drain).
func (a *Agent) Stop() error { return a.signal(syscall.SIGTERM, 40*time.Second) }

// Kill sends SIGKILL, the crash the agent must survive.
func (a *Agent) Kill() error { return a.signal(syscall.SIGKILL, 10*time.Second) }

func (a *Agent) signal(sig syscall.Signal, wait time.Duration) error {
	if a.daemon == nil {
		return nil
	}
	defer func() {
		a.daemon = nil
		a.logf.Close()
	}()
	if err := a.daemon.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("agent %s: %w", sig, err)
	}
	select {
	case err := <-a.exited:
		var ee *exec.ExitError
		if sig == syscall.SIGTERM && err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 0) {
			return fmt.Errorf("agent exit after SIGTERM: %w (want 0)", err)
		}
		return nil
	case <-time.After(wait):
		_ = a.daemon.Process.Kill()
		<-a.exited
		return fmt.Errorf("agent did not exit within %s of %s", wait, sig)
	}
}

// Reconfigure rewrites agent.yaml from the fields (change Env or Network
// first) and waits until the running daemon has reloaded it, as it does
// after an operator's edit.
func (a *Agent) Reconfigure(ctx context.Context) error {
	before := a.reloads()
	if err := a.WriteConfig(); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.reloads() == before {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("agent %s did not reload its config within 10s: %s", a.App, a.LogTail(10))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// reloads counts the daemon's "config and template reloaded" log lines.
func (a *Agent) reloads() int {
	b, _ := os.ReadFile(a.LogPath())
	return strings.Count(string(b), `"msg":"config and template reloaded"`)
}

// LogTail returns the daemon log's last n lines.
func (a *Agent) LogTail(n int) string {
	b, _ := os.ReadFile(a.LogPath())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Command runs `deploy-agent ARGS...` under /bin/sh as SSM would.
func (a *Agent) Command(ctx context.Context, args ...string) DeployResult {
	q := make([]string, len(args))
	for i, s := range args {
		q[i] = shellQuote(s)
	}
	return Shell(ctx, a.env(), "deploy-agent "+strings.Join(q, " "))
}

// Deploy implements Deployer: `deploy-agent deploy --image REF --wait`.
func (a *Agent) Deploy(ctx context.Context, image string) DeployResult {
	r := a.Command(ctx, "deploy", "--image", image, "--wait")
	r.Image = image
	return r
}

// Status is the part of `status --json` the harness reads.
type Status struct {
	Active *struct {
		Color     string `json:"color"`
		Image     string `json:"image"`
		Digest    string `json:"digest"`
		Port      int    `json:"port"`
		Container string `json:"container"`
		Healthy   bool   `json:"healthy"`
	} `json:"active"`
	Previous  json.RawMessage `json:"previous"`
	Deploying *struct {
		ID    string `json:"id"`
		Image string `json:"image"`
		Step  string `json:"step"`
	} `json:"deploying"`
}

// Status runs `status --json`.
func (a *Agent) Status(ctx context.Context) (Status, error) {
	var s Status
	r := a.Command(ctx, "status", "--json")
	if r.Exit != 0 {
		return s, fmt.Errorf("status exit %d: %s", r.Exit, r.Output)
	}
	if err := json.Unmarshal([]byte(r.Output), &s); err != nil {
		return s, fmt.Errorf("status --json: %w: %s", err, r.Output)
	}
	return s, nil
}

// Record is one entry of `history --json`.
type Record struct {
	ID       string    `json:"id"`
	Image    string    `json:"image"`
	Digest   string    `json:"digest"`
	Color    string    `json:"color"`
	Result   string    `json:"result"`
	Reason   string    `json:"reason"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Steps    []struct {
		Name   string `json:"name"`
		MS     int64  `json:"ms"`
		Detail string `json:"detail"`
	} `json:"steps"`
}

// History runs `history --json`, newest first.
func (a *Agent) History(ctx context.Context) ([]Record, error) {
	var rs []Record
	r := a.Command(ctx, "history", "--json", "-n", "1000")
	if r.Exit != 0 {
		return nil, fmt.Errorf("history exit %d: %s", r.Exit, r.Output)
	}
	if err := json.Unmarshal([]byte(r.Output), &rs); err != nil {
		return nil, fmt.Errorf("history --json: %w: %s", err, tail(r.Output, 500))
	}
	return rs, nil
}
