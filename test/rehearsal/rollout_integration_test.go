//go:build integration

package rehearsal

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rolloutRun is one run of release.yml's deploy step.
type rolloutRun struct {
	cmd   *exec.Cmd
	out   bytes.Buffer
	start time.Time
	done  chan struct{}
	exit  int
	took  time.Duration
}

// deployStep is release.yml's rollout step, from the workflow file itself.
func (w *world) deployStep() workflowStep {
	wf := filepath.Join(w.root, ".github", "workflows", "release.yml")
	return readStep(w.t, wf, "deploy", "rollout", "send the deploy command")
}

// startRollout runs the deploy step, unchanged, for release r (nginx too
// when withNginx), with the fake aws first on PATH and the environment the
// workflow gives the step.
func (w *world) startRollout(r release, withNginx bool) *rolloutRun {
	t := w.t
	step := w.deployStep()
	nginx := ""
	if withNginx {
		nginx = r.nginx
	}
	w.runID++
	values := map[string]string{
		"APP_REF": r.app, "NGINX_REF": nginx, "COMMIT": r.sha,
		"DOCUMENT": deployDoc, "TAG_KEY": tagKey, "TAG_VALUE": tagValue,
		"MAX_CONCURRENCY": "1", "DELIVERY_TIMEOUT": "300",
		// A repository variable (DEPLOY_POLL_SECONDS): the job asks SSM
		// every second instead of every ten.
		"POLL_SECONDS":        "1",
		"JOB_TIMEOUT_MINUTES": "60", "RELEASE_PARAMETER": "/mywebchat/current-release",
	}
	summary := filepath.Join(w.dir, "step-summary")
	env := append(stepEnv(t, step, values),
		"PATH="+w.bin+":"+os.Getenv("PATH"), "HOME="+w.dir, "FAKEAWS_STATE_DIR="+w.state,
		"AWS_REGION="+region, "GITHUB_SHA="+r.sha, "GITHUB_RUN_ID="+itoa(w.runID),
		"GITHUB_STEP_SUMMARY="+summary, "GITHUB_OUTPUT="+filepath.Join(w.dir, "step-output"), "CI=true")
	rr := &rolloutRun{done: make(chan struct{})}
	rr.cmd = stepCommand(t, w.dir, step.Run, env)
	rr.cmd.Stdout, rr.cmd.Stderr = &rr.out, &rr.out
	// Its own process group, as the runner's: a cancel signals the step's shell.
	rr.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	rr.start = time.Now()
	if err := rr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := rr.cmd.Wait()
		rr.took = time.Since(rr.start)
		rr.exit = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			rr.exit = ee.ExitCode()
			if rr.exit < 0 {
				rr.exit = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
			}
		} else if err != nil {
			rr.exit = -1
		}
		close(rr.done)
	}()
	return rr
}

func (rr *rolloutRun) wait() *rolloutRun {
	<-rr.done
	return rr
}

// rollout runs the deploy step to its end.
func (w *world) rollout(r release, withNginx bool) *rolloutRun {
	return w.startRollout(r, withNginx).wait()
}

// reportLine is the step's report line for an instance ("deployed", ...).
func (rr *rolloutRun) reportLine(id string) string {
	for _, line := range strings.Split(rr.out.String(), "\n") {
		if strings.HasPrefix(line, "  "+id+": ") {
			return strings.TrimPrefix(line, "  "+id+": ")
		}
	}
	return ""
}

// agentStatus is what `deploy-agent status --json` says on a host.
type agentStatus struct {
	Active *struct {
		Color, Image, Digest, Container string
		Healthy                         bool
	} `json:"active"`
	Deploying *struct{ ID, Image, Step string } `json:"deploying"`
}

func (h *host) status(t testing.TB) agentStatus {
	t.Helper()
	out, err := h.execErr("deploy-agent status --json")
	if err != nil {
		t.Fatalf("%s: deploy-agent status: %v\n%s", h.name, err, out)
	}
	var st agentStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%s: status --json: %v\n%s", h.name, err, out)
	}
	return st
}

// recordedRelease is the parameter release.yml keeps for new hosts.
func (w *world) recordedRelease() map[string]string {
	out, err := w.aws("ssm", "get-parameter", "--name", "/mywebchat/current-release", "--query", "Parameter.Value", "--output", "text")
	if err != nil {
		return nil
	}
	m := map[string]string{}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		w.t.Fatalf("/mywebchat/current-release is not JSON: %v: %s", err, out)
	}
	return m
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
