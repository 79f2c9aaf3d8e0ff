package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// DeployResult is one deploy as its caller saw it.
type DeployResult struct {
	Image    string
	Exit     int // the command's exit code; -1 when it could not run
	Start    time.Time
	Duration time.Duration
	Output   string
}

// Deployer deploys an image behind a scenario's nginx.
type Deployer interface {
	// Name labels the deployer in reports.
	Name() string
	// Deploy runs one deploy to completion.
	Deploy(ctx context.Context, image string) DeployResult
	// Containers names every container the deployer may have created.
	Containers() []string
}

// Shell runs a command line under /bin/sh -c, as SSM Run Command does, and
// reports its exit code.
func Shell(ctx context.Context, env []string, line string) DeployResult {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	r := DeployResult{Start: start, Duration: time.Since(start), Output: out.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.Exit = ee.ExitCode()
	default:
		r.Exit = -1
		r.Output += "\n" + err.Error()
	}
	return r
}

// StopAndRun is the naive baseline: test/e2e/baselines/stop-and-run.sh.
type StopAndRun struct {
	Script    string
	Container string
	Port      int
}

// Name implements Deployer.
func (s *StopAndRun) Name() string { return "stop-and-run" }

// Containers implements Deployer.
func (s *StopAndRun) Containers() []string { return []string{s.Container} }

// Deploy implements Deployer.
func (s *StopAndRun) Deploy(ctx context.Context, image string) DeployResult {
	r := Shell(ctx, []string{"SR_NAME=" + s.Container, "SR_PORT=" + strconv.Itoa(s.Port), "SR_COLOR=blue"},
		fmt.Sprintf("sh %s %s", shellQuote(s.Script), shellQuote(image)))
	r.Image = image
	return r
}

// BlueGreen is the common shell-script blue/green:
// test/e2e/baselines/bluegreen.sh with a two-server upstream.
type BlueGreen struct {
	Script              string
	Prefix              string // container name prefix
	BluePort, GreenPort int
	StateDir            string
	Upstream            string
	Reload              string
}

// Name implements Deployer.
func (b *BlueGreen) Name() string { return "shell blue/green" }

// Containers implements Deployer.
func (b *BlueGreen) Containers() []string { return []string{b.Prefix + "-blue", b.Prefix + "-green"} }

// Deploy implements Deployer.
func (b *BlueGreen) Deploy(ctx context.Context, image string) DeployResult {
	if err := os.MkdirAll(b.StateDir, 0o700); err != nil {
		return DeployResult{Image: image, Exit: -1, Output: err.Error()}
	}
	r := Shell(ctx, []string{
		"BG_NAME=" + b.Prefix, "BG_BLUE_PORT=" + strconv.Itoa(b.BluePort), "BG_GREEN_PORT=" + strconv.Itoa(b.GreenPort),
		"BG_STATE_DIR=" + b.StateDir, "BG_UPSTREAM=" + b.Upstream, "BG_RELOAD=" + b.Reload,
	}, fmt.Sprintf("sh %s %s", shellQuote(b.Script), shellQuote(image)))
	r.Image = image
	return r
}

// BaselineScript is the path of a baseline script in the checkout.
func BaselineScript(root, name string) string {
	return filepath.Join(root, "test", "e2e", "baselines", name)
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + string(bytes.ReplaceAll([]byte(s), []byte("'"), []byte(`'\''`))) + "'"
}
