//go:build integration

package rehearsal

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadRelease builds a release and puts its images on every host.
func (w *world) loadRelease(r release) release {
	for _, h := range w.hosts {
		h.load(r.tags()...)
	}
	return r
}

// consecutive runs n app-only rollouts back to back under one load.
func (w *world) consecutive(t *testing.T, shape loadShape, n int) {
	var rels []release
	for range n {
		rels = append(rels, w.loadRelease(w.buildRelease("")))
	}
	l := w.startLoad(shape, "three", w.hosts...)
	var runs []*rolloutRun
	for _, r := range rels {
		runs = append(runs, w.rollout(r, true))
	}
	outcome := l.stop()
	f := scenarioFigures{name: fmt.Sprintf("%d consecutive rollouts under one load", n)}
	for i, rr := range runs {
		f.rollouts = append(f.rollouts, w.rolloutFigure(strconv.Itoa(i+1), rr, outcome))
	}
	for _, h := range w.hosts {
		f.users = append(f.users, userFigure(h.name, outcome[h.name], ""))
	}
	w.record(f)
	for i, rr := range runs {
		t.Logf("rollout %d: exit %d in %s (%.1f s per host)", i+1, rr.exit, rr.took.Round(time.Millisecond),
			rr.took.Seconds()/float64(len(w.hosts)))
		if rr.exit != 0 {
			t.Errorf("rollout %d exited %d\n%s", i+1, rr.exit, rr.out.String())
		}
	}
	w.checkRollout(t, runs[len(runs)-1], outcome, rels[len(rels)-1])
}

// failing: a release whose app never becomes healthy fails on the first
// host and goes no further; every host keeps serving its release, and the
// recorded release stays the last good one.
func (w *world) failing(t *testing.T, shape loadShape, good release) {
	bad := w.loadRelease(w.buildBrokenRelease())
	l := w.startLoad(shape, "fail", w.hosts...)
	rr := w.rollout(bad, true)
	outcome := l.stop()
	w.recordRun("a release whose app never gets healthy", rr, outcome)
	t.Logf("failing release: exit %d in %s", rr.exit, rr.took.Round(time.Millisecond))
	if rr.exit != 1 {
		t.Errorf("the deploy step exited %d, want 1\n%s", rr.exit, rr.out.String())
	}
	// The rollout order is the step's: exactly one host failed, the rest were not touched.
	failed := 0
	for _, h := range w.hosts {
		line := rr.reportLine(h.id)
		switch {
		case strings.HasPrefix(line, "FAILED") && strings.Contains(line, "exit code 1"):
			failed++
		case strings.HasPrefix(line, "not deployed"):
		default:
			t.Errorf("%s: report %q, want FAILED with the agent's exit code 1 (the first host) or not deployed", h.name, line)
		}
	}
	if failed != 1 {
		t.Errorf("%d hosts report FAILED, want exactly 1 (the rollout stops at the first failure)\n%s", failed, rr.out.String())
	}
	for _, h := range w.hosts {
		w.requireOn(t, good, h)
		o := outcome[h.name]
		t.Logf("%s: %s", h.name, o)
		if !o.served() {
			t.Errorf("%s: users noticed the failed release: %s", h.name, o)
		}
	}
	if rec := w.recordedRelease(); rec["app"] != good.app {
		t.Errorf("a failed release was recorded: %v", rec)
	}
}

// agentDown: a host whose SSM agent is down is named in the report and the
// job fails, while every other host gets the release; once its agent is
// back, the next rollout brings it level.
func (w *world) agentDown(t *testing.T, shape loadShape) {
	down := w.hosts[len(w.hosts)-1]
	down.exec("systemctl stop amazon-ssm-agent")
	r := w.loadRelease(w.buildRelease(""))
	l := w.startLoad(shape, "down", w.hosts...)
	rr := w.rollout(r, true)
	outcome := l.stop()
	w.recordRun("one host's SSM agent stopped", rr, outcome)
	t.Logf("agent down: exit %d in %s", rr.exit, rr.took.Round(time.Millisecond))
	if rr.exit != 1 {
		t.Errorf("the deploy step exited %d with a host unreachable, want 1\n%s", rr.exit, rr.out.String())
	}
	if line := rr.reportLine(down.id); !strings.HasPrefix(line, "NOT DEPLOYED") {
		t.Errorf("%s (agent down): report %q, want NOT DEPLOYED", down.name, line)
	}
	for _, h := range w.hosts {
		o := outcome[h.name]
		if !o.served() {
			t.Errorf("%s: users noticed: %s", h.name, o)
		}
		if h == down {
			continue
		}
		if line := rr.reportLine(h.id); line != "deployed" {
			t.Errorf("%s: report %q, want deployed", h.name, line)
		}
		w.requireOn(t, r, h)
	}
	down.exec("systemctl start amazon-ssm-agent")
	rr = w.rollout(r, true)
	if rr.exit != 0 {
		t.Fatalf("the rollout after the agent came back exited %d\n%s", rr.exit, rr.out.String())
	}
	for _, h := range w.hosts {
		w.requireOn(t, r, h)
	}
}

// ghost registers an instance tagged as a deploy target that SSM does not
// manage (its SSM agent never registered).
func (w *world) ghost() instance {
	ghost := instance{InstanceID: "i-0" + w.newSHA()[:16], Tags: map[string]string{tagKey: tagValue, "Name": "ghost"}}
	ghost.Exec.Kind = "docker"
	ghost.Exec.Container = "mywebchat-rehearsal-ghost-never-started"
	w.saveInstance(ghost)
	return ghost
}

// forget takes an instance out of the fake account (it was terminated).
func (w *world) forget(in instance) {
	_ = os.Remove(filepath.Join(w.state, "instances", in.InstanceID+".json"))
}

// unmanaged: a tagged instance SSM does not manage is named in the report
// and fails the job; the managed hosts get the release.
func (w *world) unmanaged(t *testing.T) {
	ghost := w.ghost()
	defer w.forget(ghost)
	r := w.loadRelease(w.buildRelease(""))
	rr := w.rollout(r, true)
	w.recordRun("a tagged instance SSM does not manage", rr, nil)
	t.Logf("unmanaged host: exit %d in %s", rr.exit, rr.took.Round(time.Millisecond))
	if rr.exit != 1 {
		t.Errorf("the deploy step exited %d with a tagged host SSM does not manage, want 1\n%s", rr.exit, rr.out.String())
	}
	if line := rr.reportLine(ghost.InstanceID); !strings.Contains(line, "not managed by SSM") {
		t.Errorf("the unmanaged host: report %q, want it named as not managed by SSM", line)
	}
	for _, h := range w.hosts {
		if line := rr.reportLine(h.id); line != "deployed" {
			t.Errorf("%s: report %q, want deployed", h.name, line)
		}
		w.requireOn(t, r, h)
	}
}

// cancelled: the job is cancelled while the first host deploys. The step
// cancels the SSM command, reports every host, exits non-zero; users notice
// nothing, no host is left mid-deploy, and the next rollout succeeds (no
// "another deploy is running").
func (w *world) cancelled(t *testing.T, shape loadShape) {
	r := w.loadRelease(w.buildRelease("page-cancel"))
	l := w.startLoad(shape, "cancel", w.hosts...)
	rr := w.startRollout(r, true)
	ctx := t.Context()
	var first *host // the host the rollout is deploying when the job is cancelled
	if err := waitFor(ctx, 60*time.Second, "a host's deploy starts", func() (bool, string) {
		for _, h := range w.hosts {
			if st := h.status(t); st.Deploying != nil && st.Deploying.Image == r.app {
				first = h
				return true, ""
			}
		}
		return false, "no host deploying yet"
	}); err != nil {
		l.stop()
		t.Fatal(err)
	}
	// What the runner does on cancel: SIGINT to the step's shell.
	_ = rr.cmd.Process.Signal(syscall.SIGINT)
	rr.wait()
	t.Logf("cancelled: exit %d in %s", rr.exit, rr.took.Round(time.Millisecond))
	// No host is left deploying: the agent finishes or undoes what it had begun.
	for _, h := range w.hosts {
		if err := waitFor(ctx, 90*time.Second, h.name+" idle", func() (bool, string) {
			st := h.status(t)
			return st.Deploying == nil && st.Active != nil && st.Active.Healthy, "deploying"
		}); err != nil {
			t.Error(err)
		}
	}
	outcome := l.stop()
	w.recordRun("the job cancelled while the first host deploys", rr, outcome)
	if rr.exit == 0 {
		t.Errorf("a cancelled deploy step exited 0\n%s", rr.out.String())
	}
	calls, _ := os.ReadFile(filepath.Join(w.state, "calls.log"))
	if !strings.Contains(string(calls), "cancel-command") {
		t.Errorf("the cancelled step did not cancel the SSM command\n%s", rr.out.String())
	}
	if line := rr.reportLine(first.id); !strings.HasPrefix(line, "NOT FINISHED") {
		t.Errorf("%s: report %q, want NOT FINISHED", first.name, line)
	}
	for _, h := range w.hosts {
		if line := rr.reportLine(h.id); h != first && line != "deployed" && !strings.HasPrefix(line, "not deployed") {
			t.Errorf("%s: report %q, want deployed (before the cancel) or not deployed", h.name, line)
		}
	}
	if rec := w.recordedRelease(); rec["app"] == r.app {
		t.Errorf("a cancelled rollout recorded its release: %v", rec)
	}
	for _, h := range w.hosts {
		o := outcome[h.name]
		t.Logf("%s: %s", h.name, o)
		if !o.served() {
			t.Errorf("%s: users noticed the cancelled rollout: %s", h.name, o)
		}
	}
	// The next run of the same release goes through everywhere.
	rr = w.rollout(r, true)
	last := &w.figures[len(w.figures)-1]
	last.rollouts = append(last.rollouts, w.rolloutFigure("the same release again", rr, nil))
	if rr.exit != 0 {
		t.Fatalf("the rollout after the cancel exited %d\n%s", rr.exit, rr.out.String())
	}
	for _, h := range w.hosts {
		w.requireOn(t, r, h)
	}
}

// recordRun records a scenario of one run of the step; outcome may be nil
// (no load).
func (w *world) recordRun(name string, rr *rolloutRun, outcome map[string]loadOutcome) {
	f := scenarioFigures{name: name, rollouts: []rolloutFigures{w.rolloutFigure("1", rr, outcome)}}
	if outcome != nil {
		for _, h := range w.hosts {
			f.users = append(f.users, userFigure(h.name, outcome[h.name], ""))
		}
	}
	w.record(f)
}
