package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// KamalProxy is kamal-proxy (github.com/basecamp/kamal-proxy), the proxy
// Kamal deploys behind, run as a process on this host for the kamal
// baseline. It is not installed by the project: Bin is a binary built from
// its source, and Start fails when it is missing. Dir is its HOME (where it
// keeps its state) and holds its control socket and log, so a run never
// touches another kamal-proxy on the machine.
type KamalProxy struct {
	Bin       string
	Dir       string
	Port      int // HTTP port users reach
	HTTPSPort int // kamal-proxy always listens for TLS too; unused here

	cmd    *exec.Cmd
	logf   *os.File
	exited chan error
}

// Env is the environment the kamal-proxy commands need to reach this
// server: its control socket and its HOME.
func (k *KamalProxy) Env() []string {
	return []string{"HOME=" + k.Dir, "XDG_RUNTIME_DIR=" + k.Dir,
		"KAMAL_PROXY_SOCKET=" + filepath.Join(k.Dir, "kamal-proxy.sock")}
}

// URL is the base address users reach.
func (k *KamalProxy) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", k.Port) }

// LogPath is where its output goes.
func (k *KamalProxy) LogPath() string { return filepath.Join(k.Dir, "kamal-proxy.log") }

// CheckBinary reports a clear error when bin is not an executable file.
func CheckBinary(bin string) error {
	if bin == "" {
		return errors.New("no kamal-proxy binary given: build one from github.com/basecamp/kamal-proxy (BENCHMARKS.md says how) and pass its path with -kamal-proxy")
	}
	st, err := os.Stat(bin)
	if err != nil {
		return fmt.Errorf("kamal-proxy binary: %w", err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("kamal-proxy binary %s is not an executable file", bin)
	}
	return nil
}

// Start runs `kamal-proxy run` and waits until it answers on Port (before
// any deploy it answers 404).
func (k *KamalProxy) Start(ctx context.Context) error {
	if err := CheckBinary(k.Bin); err != nil {
		return err
	}
	if err := os.MkdirAll(k.Dir, 0o700); err != nil {
		return fmt.Errorf("kamal-proxy: %w", err)
	}
	f, err := os.OpenFile(k.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("kamal-proxy: %w", err)
	}
	cmd := exec.Command(k.Bin, "run", "--http-port", strconv.Itoa(k.Port), "--https-port", strconv.Itoa(k.HTTPSPort))
	cmd.Env = append(os.Environ(), k.Env()...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("kamal-proxy start: %w", err)
	}
	k.cmd, k.logf, k.exited = cmd, f, make(chan error, 1)
	go func() { k.exited <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-k.exited:
			k.cmd = nil
			f.Close()
			return fmt.Errorf("kamal-proxy exited at start: %v: %s", err, k.logTail())
		default:
		}
		if _, _, err := Get(ctx, k.URL()+"/"); err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			k.Stop()
			return fmt.Errorf("kamal-proxy did not answer on %s within 20s: %s", k.URL(), k.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits up to 10 s, then kills it.
func (k *KamalProxy) Stop() {
	if k.cmd == nil {
		return
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.exited:
	case <-time.After(10 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.exited
	}
	k.cmd = nil
	k.logf.Close()
}

func (k *KamalProxy) logTail() string {
	b, _ := os.ReadFile(k.LogPath())
	return tail(string(b), 2000)
}

// Kamal is the kamal baseline: test/e2e/baselines/kamal.sh, two colors of
// the app behind Proxy.
type Kamal struct {
	Script              string
	Proxy               *KamalProxy
	Service             string
	Prefix              string // container name prefix
	BluePort, GreenPort int
	StateDir            string
	// StaticDir holds the page's files; the app serves them (nginx does
	// in front of the agent's colors).
	StaticDir string
	// HealthInterval is kamal-proxy's --health-check-interval; 0 keeps
	// Kamal's default of 1 s.
	HealthInterval time.Duration
}

// Name implements Deployer.
func (k *Kamal) Name() string {
	if k.HealthInterval > 0 && k.HealthInterval != time.Second {
		return "kamal-proxy (health every " + k.HealthInterval.String() + ")"
	}
	return "kamal-proxy"
}

// Containers implements Deployer.
func (k *Kamal) Containers() []string { return []string{k.Prefix + "-blue", k.Prefix + "-green"} }

// Deploy implements Deployer.
func (k *Kamal) Deploy(ctx context.Context, image string) DeployResult {
	if err := os.MkdirAll(k.StateDir, 0o700); err != nil {
		return DeployResult{Image: image, Exit: -1, Output: err.Error()}
	}
	interval := k.HealthInterval
	if interval <= 0 {
		interval = time.Second
	}
	env := append(k.Proxy.Env(), "KP_BIN="+k.Proxy.Bin, "KP_SERVICE="+k.Service, "KP_NAME="+k.Prefix,
		"KP_BLUE_PORT="+strconv.Itoa(k.BluePort), "KP_GREEN_PORT="+strconv.Itoa(k.GreenPort),
		"KP_STATE_DIR="+k.StateDir, "KP_STATIC_DIR="+k.StaticDir, "KP_HEALTH_INTERVAL="+interval.String())
	r := Shell(ctx, env, fmt.Sprintf("sh %s %s", shellQuote(k.Script), shellQuote(image)))
	r.Image = image
	if r.Exit != 0 {
		r.Output = strings.TrimSpace(r.Output) + "\nkamal-proxy log: " + k.Proxy.logTail()
	}
	return r
}
