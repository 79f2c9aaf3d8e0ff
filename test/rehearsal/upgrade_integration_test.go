//go:build integration

package rehearsal

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// releasesDir is where a stand-in host finds GitHub's release assets: the
// bootstrap's user data fetches from it, and mywebchat-agent-upgrade is
// pointed at it (MYWEBCHAT_RELEASES_URL) instead of github.com.
const releasesDir = "/var/tmp/github-release"

// agentBundle is the host bundle of a release whose deploy agent reports
// version, made as the bundle step makes it: this run's bundle with the
// agent rebuilt with -X main.version.
type agentBundle struct {
	release, version, sum, path string
}

func (w *world) buildAgentBundle() agentBundle {
	t := w.t
	t.Helper()
	b := agentBundle{release: "sha-" + w.newSHA()}
	b.version = "rehearsal-" + b.release[4:16]
	dir := filepath.Join(w.dir, "bundle-"+b.release)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "tar", "-xzf", filepath.Join(w.bundle, "mywebchat-host.tar.gz"))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+b.version,
		"-o", filepath.Join(dir, "bin", "deploy-agent-linux-"+runtime.GOARCH), "./agent/cmd/deploy-agent")
	cmd.Dir = w.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the new agent: %v\n%s", err, out)
	}
	out := filepath.Join(w.dir, "assets-"+b.release)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	b.path = filepath.Join(out, "mywebchat-host.tar.gz")
	run(t, dir, "tar", "-czf", b.path, ".")
	data, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	b.sum = hex.EncodeToString(sum[:])
	return b
}

// publish puts the bundle where the hosts' releases URL points, as the
// GitHub release would serve it.
func (w *world) publish(b agentBundle) {
	for _, h := range w.hosts {
		h.exec("mkdir -p " + releasesDir + "/" + b.release)
		run(w.t, ".", "docker", "cp", b.path, h.container+":"+releasesDir+"/"+b.release+"/")
	}
}

// upgradeRun runs agent-upgrade.yml's rollout step, unchanged, with the
// fake aws first on PATH.
func (w *world) upgradeRun(release, sum string) *rolloutRun {
	t := w.t
	step := readStep(t, filepath.Join(w.root, ".github", "workflows", "agent-upgrade.yml"), "upgrade", "rollout")
	w.runID++
	env := append(stepEnv(t, step, map[string]string{
		"RELEASE": release, "BUNDLE_SHA256": sum, "DOCUMENT": "MyWebChat-AgentUpgrade",
		"TAG_KEY": tagKey, "TAG_VALUE": tagValue, "DELIVERY_TIMEOUT": "300", "POLL_SECONDS": "1",
	}), "PATH="+w.bin+":"+os.Getenv("PATH"), "HOME="+w.dir, "FAKEAWS_STATE_DIR="+w.state,
		"AWS_REGION="+region, "GITHUB_RUN_ID="+itoa(w.runID), "GITHUB_STEP_SUMMARY="+filepath.Join(w.dir, "upgrade-summary"),
		"GITHUB_OUTPUT="+filepath.Join(w.dir, "upgrade-output"), "CI=true")
	rr := &rolloutRun{}
	rr.cmd = stepCommand(t, w.dir, step.Run, env)
	rr.cmd.Stdout, rr.cmd.Stderr = &rr.out, &rr.out
	rr.start = time.Now()
	err := rr.cmd.Run()
	rr.took = time.Since(rr.start)
	if ee, ok := err.(*exec.ExitError); ok {
		rr.exit = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return rr
}

// agentState is what an upgrade may change on a host: the agent's binary,
// its version and its process.
func (h *host) agentState() string {
	return strings.TrimSpace(h.exec("sha256sum /usr/local/bin/deploy-agent | cut -d' ' -f1; deploy-agent version; systemctl show -p MainPID --value deploy-agent.service"))
}

// agentUpgrade: a bundle with the wrong SHA-256 is refused on the first
// host and changes nothing anywhere; the right one upgrades every host's
// agent, one after the other, while users notice nothing.
func (w *world) agentUpgrade(t *testing.T, shape loadShape) {
	b := w.buildAgentBundle()
	w.publish(b)
	before := map[string]string{}
	for _, h := range w.hosts {
		before[h.name] = h.agentState()
	}

	wrong := sha256.Sum256([]byte("not the bundle"))
	rr := w.upgradeRun(b.release, hex.EncodeToString(wrong[:]))
	f := scenarioFigures{name: "agent upgrade (agent-upgrade.yml; an unmanaged tagged instance in the second run)",
		rollouts: []rolloutFigures{w.rolloutFigure("wrong SHA-256", rr, nil)}}
	t.Logf("wrong SHA-256: exit %d in %s", rr.exit, rr.took.Round(time.Millisecond))
	if rr.exit == 0 {
		t.Errorf("an upgrade with the wrong SHA-256 exited 0\n%s", rr.out.String())
	}
	if !strings.Contains(rr.out.String(), "refused, nothing was changed") {
		t.Errorf("the report does not say the bundle was refused\n%s", rr.out.String())
	}
	// The first host refuses it; the rollout stops there and names the rest.
	targets := append([]*host(nil), w.hosts...)
	sort.Slice(targets, func(i, j int) bool { return targets[i].id < targets[j].id })
	for i, h := range targets {
		want := "not upgraded: the rollout stopped at a failure"
		if i == 0 {
			want = "FAILED: Failed (Failed), exit code 1"
		}
		if line := rr.reportLine(h.id); line != want {
			t.Errorf("%s: report %q after the wrong SHA-256, want %q", h.name, line, want)
		}
		// A private repository's host fetched the bundle through the API
		// with the token (and refused it); the others asked nothing.
		if h.private && i == 0 {
			h.requireFetchedPrivately(t, "tags/"+b.release)
		} else if h.private {
			h.requireNoGitHubRequest(t)
		}
	}
	for _, h := range w.hosts {
		if now := h.agentState(); now != before[h.name] {
			t.Errorf("%s: a refused upgrade changed the agent: %q, then %q", h.name, before[h.name], now)
		}
	}

	// A tagged instance SSM does not manage keeps its old agent: the
	// upgrade reaches every other host, names it, and the job fails.
	ghost := w.ghost()
	defer w.forget(ghost)
	l := w.startLoad(shape, "upgrade", w.hosts...)
	rr = w.upgradeRun(b.release, b.sum)
	outcome := l.stop()
	f.rollouts = append(f.rollouts, w.rolloutFigure("right SHA-256", rr, outcome))
	for _, h := range w.hosts {
		f.users = append(f.users, userFigure(h.name, outcome[h.name], ""))
	}
	w.record(f)
	t.Logf("agent upgrade: exit %d in %s (%.1f s per host)", rr.exit, rr.took.Round(time.Millisecond),
		rr.took.Seconds()/float64(len(w.hosts)))
	if rr.exit != 1 {
		t.Errorf("the agent upgrade exited %d with a tagged host SSM does not manage, want 1\n%s", rr.exit, rr.out.String())
	}
	if line := rr.reportLine(ghost.InstanceID); !strings.Contains(line, "not managed by SSM") {
		t.Errorf("the unmanaged host: report %q, want it named as not managed by SSM\n%s", line, rr.out.String())
	}
	for _, h := range w.hosts {
		if line := rr.reportLine(h.id); line != "upgraded" {
			t.Errorf("%s: report %q, want upgraded", h.name, line)
		}
		now := h.agentState()
		if got := strings.TrimSpace(h.exec("deploy-agent version")); got != "deploy-agent "+b.version {
			t.Errorf("%s: deploy-agent version says %q, want deploy-agent %s", h.name, got, b.version)
		}
		if old := strings.Fields(before[h.name]); len(old) > 0 && strings.Fields(now)[len(strings.Fields(now))-1] == old[len(old)-1] {
			t.Errorf("%s: the agent was not restarted (same process): %q", h.name, now)
		}
		if h.private {
			h.requireFetchedPrivately(t, "tags/"+b.release)
			h.requireNoTokenOnDisk(t, rr.out.String())
		}
		if st := h.status(t); st.Active == nil || !st.Active.Healthy {
			t.Errorf("%s: after the upgrade the active color is %+v, want healthy", h.name, st.Active)
		}
		o := outcome[h.name]
		t.Logf("%s: %s", h.name, o)
		if !o.served() {
			t.Errorf("%s: users noticed the agent upgrade: %s", h.name, o)
		}
	}
}
