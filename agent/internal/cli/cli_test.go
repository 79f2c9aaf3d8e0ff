package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
	"github.com/mywebchat/mywebchat/agent/internal/queue"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

type setup struct {
	config, stateDir string
	q                queue.Queue
}

func newSetup(t *testing.T) setup {
	t.Helper()
	dir := t.TempDir()
	s := setup{config: filepath.Join(dir, "agent.yaml"), stateDir: filepath.Join(dir, "state")}
	cfg := fmt.Sprintf("state_dir: %s\napp: {repository: example.com/team/chat}\nproxy: {mode: host, output: %s/up.conf}\n", s.stateDir, dir)
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.q = queue.Queue{StateDir: s.stateDir}
	if err := s.q.Init(); err != nil {
		t.Fatal(err)
	}
	return s
}

// agentUp holds the agent lock as a running daemon would.
func (s setup) agentUp(t *testing.T) {
	t.Helper()
	f, err := s.q.Lock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runEnv(t, nil, args...)
}

func runEnv(t *testing.T, vars map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }, Version: "v-test"}
	code := Main(context.Background(), env, args)
	return out.String(), errb.String(), code
}

func TestExitCodes(t *testing.T) {
	s := newSetup(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"no command", nil, exitcode.BadInput, "usage"},
		{"unknown command", []string{"explode"}, exitcode.BadInput, "unknown command"},
		{"version", []string{"version"}, exitcode.OK, "deploy-agent v-test"},
		{"missing config", []string{"--config", "/nonexistent.yaml", "deploy", "--image", "x"}, exitcode.BadInput, "no such file"},
		{"foreign image", []string{"--config", s.config, "deploy", "--image", "example.com/other/chat:v1"}, exitcode.BadInput, "not in the repository"},
		{"no image", []string{"deploy", "--config", s.config}, exitcode.BadInput, "no image given"},
		{"agent not running", []string{"--config", s.config, "deploy", "--image", "example.com/team/chat:v1"}, exitcode.NoAgent, "systemctl start deploy-agent"},
		{"rollback without previous", []string{"--config", s.config, "rollback"}, exitcode.BadInput, "no previous release"},
		{"history empty", []string{"--config", s.config, "history", "--json"}, exitcode.OK, "[]"},
		{"bad flag", []string{"--config", s.config, "history", "--bogus"}, exitcode.BadInput, "bogus"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(out+errOut, tt.wantOut) {
				t.Errorf("exit %d, output %q; want %d containing %q", code, out+errOut, tt.wantCode, tt.wantOut)
			}
		})
	}
}

func TestDeployBusyAndQueued(t *testing.T) {
	s := newSetup(t)
	s.agentUp(t)
	store := state.Store{Dir: s.stateDir}
	store.SaveProgress(&state.Progress{Record: state.Record{ID: "20261123T050000Z-12345678", Image: "example.com/team/chat:v1", Started: time.Now()}, Step: "health"})
	_, errOut, code := run(t, "--config", s.config, "deploy", "--image", "example.com/team/chat:v2")
	if code != exitcode.Busy || !strings.Contains(errOut, "20261123T050000Z-12345678") || !strings.Contains(errOut, "health") {
		t.Errorf("deploy while one runs: exit %d %q, want 3 naming the running deploy and its step", code, errOut)
	}
	store.ClearProgress()

	out, _, code := run(t, "--config", s.config, "deploy", "--image", "example.com/team/chat:v2", "--wait=false")
	if code != exitcode.OK || !strings.Contains(out, "queued deploy") {
		t.Fatalf("deploy --wait=false: exit %d %q", code, out)
	}
	ids, _ := s.q.Pending()
	if len(ids) != 1 {
		t.Fatalf("pending = %v, want one request", ids)
	}
	if _, errOut, code := run(t, "--config", s.config, "deploy", "--image", "example.com/team/chat:v3"); code != exitcode.Busy || !strings.Contains(errOut, ids[0]) {
		t.Errorf("deploy while one is queued: exit %d %q", code, errOut)
	}
	s.q.Remove(ids[0])

	// --wait follows events and exits with the result's code.
	go func() {
		for {
			ids, _ := s.q.Pending()
			if len(ids) == 1 {
				s.q.Remove(ids[0])
				s.q.AppendEvent(ids[0], queue.Event{At: time.Now(), Step: "validate", Status: "started", Detail: "x"})
				s.q.WriteResult(queue.Result{ID: ids[0], Result: "failed", Exit: 1, Message: "health gate: boom"})
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	out, errOut, code = run(t, "--config", s.config, "deploy", "--image", "example.com/team/chat:v4")
	if code != exitcode.Failed || !strings.Contains(out, "validate") || !strings.Contains(errOut, "health gate: boom") {
		t.Errorf("deploy --wait: exit %d\nstdout %q\nstderr %q", code, out, errOut)
	}

	_, errOut, code = run(t, "--config", s.config, "deploy", "--image", "example.com/team/chat:v5", "--timeout", "200ms")
	if code != exitcode.NoAgent || !strings.Contains(errOut, "timed out") {
		t.Errorf("deploy --timeout: exit %d %q, want 4 timed out", code, errOut)
	}
}

func TestFlagEnvFallback(t *testing.T) {
	s := newSetup(t)
	store := state.Store{Dir: s.stateDir}
	for _, id := range []string{"20261123T050000Z-00000001", "20261123T050000Z-00000002", "20261123T050000Z-00000003"} {
		store.Append(state.Record{ID: id, Result: state.Succeeded})
	}
	out, _, code := runEnv(t, map[string]string{"DEPLOY_AGENT_CONFIG": s.config, "DEPLOY_AGENT_N": "1", "DEPLOY_AGENT_JSON": "true"}, "history")
	if code != exitcode.OK || strings.Count(out, `"id"`) != 1 || !strings.Contains(out, "00000003") {
		t.Errorf("history from env: exit %d %q, want JSON with the newest record only", code, out)
	}
	out, _, code = runEnv(t, map[string]string{"DEPLOY_AGENT_CONFIG": s.config, "DEPLOY_AGENT_N": "1"}, "history", "-n", "2")
	if code != exitcode.OK || strings.Count(out, "succeeded") != 2 {
		t.Errorf("flag must win over env: exit %d %q", code, out)
	}
	_, errOut, code := runEnv(t, map[string]string{"DEPLOY_AGENT_TIMEOUT": "soon"}, "--config", s.config, "deploy", "--image", "example.com/team/chat:v1")
	if code != exitcode.BadInput || !strings.Contains(errOut, "DEPLOY_AGENT_TIMEOUT") {
		t.Errorf("malformed env: exit %d %q, want 2 naming the variable", code, errOut)
	}
}
