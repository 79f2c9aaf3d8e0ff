package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// rootPath is the PATH systemd gives the SSM agent, and so its scripts.
const rootPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// host runs one invocation's script on an instance as root under /bin/sh and
// returns its exit code. When ctx ends first it kills the script's whole
// session and returns ctx's error.
type host interface {
	run(ctx context.Context, job job, stdout, stderr *os.File) (int, error)
}

// job is what an invocation runs.
type job struct {
	CommandID  string
	InstanceID string
	Step       string
	Script     string
	Env        map[string]string
}

func (j job) envList() []string {
	keys := make([]string, 0, len(j.Env))
	for k := range j.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+j.Env[k])
	}
	return out
}

func hostFor(in *Instance) host {
	if in.Exec.Kind == "docker" {
		return dockerHost{container: in.Exec.Container}
	}
	d, _ := time.ParseDuration(in.Exec.Delay)
	return localHost{dir: in.Exec.Dir, delay: d, script: in.Exec.Script}
}

// localHost is a simulated target: the script runs on this machine in the
// host's folder.
type localHost struct {
	dir    string
	delay  time.Duration
	script string
}

func (h localHost) run(ctx context.Context, j job, stdout, stderr *os.File) (int, error) {
	work := filepath.Join(h.dir, "orchestration", j.CommandID, j.Step)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return -1, fmt.Errorf("local host: %w", err)
	}
	docScript := filepath.Join(work, "_script.sh")
	if err := os.WriteFile(docScript, []byte(j.Script), 0o700); err != nil {
		return -1, fmt.Errorf("local host: %w", err)
	}
	script := docScript
	if h.script != "" {
		script = filepath.Join(work, "_simulated.sh")
		if err := os.WriteFile(script, []byte(h.script+"\n"), 0o700); err != nil {
			return -1, fmt.Errorf("local host: %w", err)
		}
	}
	if h.delay > 0 {
		t := time.NewTimer(h.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return -1, ctx.Err()
		}
	}
	cmd := exec.Command("/bin/sh", script)
	cmd.Dir = work
	cmd.Env = append([]string{"PATH=" + rootPath, "FAKESSM_DOCUMENT_SCRIPT=" + docScript}, j.envList()...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("local host: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err)
	case <-ctx.Done():
		// The script leads its own session: kill every process in it.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return -1, ctx.Err()
	}
}

func exitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, err
}

// dockerHost is a stand-in host container: the script is written into the
// container where the SSM agent keeps it and run with docker exec as root,
// in a session of its own so a timeout or cancel can kill all of it.
type dockerHost struct{ container string }

func (h dockerHost) run(ctx context.Context, j job, stdout, stderr *os.File) (int, error) {
	work := "/var/lib/amazon/ssm/" + j.InstanceID + "/document/orchestration/" + j.CommandID + "/" + j.Step
	put := exec.CommandContext(ctx, "docker", "exec", "-i", "-u", "0", h.container, "/bin/sh", "-c",
		`mkdir -p "$1" && cat >"$1/_script.sh" && chmod 0700 "$1/_script.sh"`, "sh", work)
	put.Stdin = strings.NewReader(j.Script)
	if out, err := put.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, fmt.Errorf("docker host %s: write script: %w: %s", h.container, err, strings.TrimSpace(string(out)))
	}
	args := []string{"exec", "-u", "0", "-w", work, "-e", "PATH=" + rootPath}
	for _, e := range j.envList() {
		args = append(args, "-e", e)
	}
	args = append(args, h.container, "setsid", "-w", "/bin/sh", "-c", `echo $$ >.session; exec /bin/sh ./_script.sh </dev/null`)
	cmd := exec.Command("docker", args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("docker host %s: %w", h.container, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(err)
	case <-ctx.Done():
		kctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		kill := exec.CommandContext(kctx, "docker", "exec", "-u", "0", h.container, "/bin/sh", "-c",
			// dash's kill takes no "--": a negative pid right after the signal.
			`s=$(cat "$1/.session" 2>/dev/null) && kill -KILL "-$s"`, "sh", work)
		if out, err := kill.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "docker host %s: kill session: %v: %s\n", h.container, err, out)
		}
		cmd.Process.Kill()
		<-done
		return -1, ctx.Err()
	}
}
