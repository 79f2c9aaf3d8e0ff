//go:build integration

package rehearsal

import (
	"os"
	"path/filepath"
	"strings"
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
	for i, rr := range runs {
		t.Logf("rollout %d: exit %d in %s (%.1f s per host)", i+1, rr.exit, rr.took.Round(time.Millisecond),
			rr.took.Seconds()/float64(len(w.hosts)))
		if rr.exit != 0 {
			t.Errorf("rollout %d exited %d\n%s", i+1, rr.exit, rr.out.String())
		}
	}
	w.checkRollout(t, runs[len(runs)-1], outcome, rels[len(rels)-1])
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

// unmanaged: a tagged instance SSM does not manage is named in the report
// and fails the job; the managed hosts get the release.
func (w *world) unmanaged(t *testing.T) {
	ghost := instance{InstanceID: "i-0" + w.newSHA()[:16], Tags: map[string]string{tagKey: tagValue, "Name": "ghost"}}
	ghost.Exec.Kind = "docker"
	ghost.Exec.Container = "mywebchat-rehearsal-ghost-never-started"
	w.saveInstance(ghost)
	defer os.Remove(filepath.Join(w.state, "instances", ghost.InstanceID+".json"))
	r := w.loadRelease(w.buildRelease(""))
	rr := w.rollout(r, true)
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
