package deploytest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	gha "github.com/mywebchat/mywebchat/test/rehearsal/workflow"
)

const (
	upgradeRelease = "sha-" + releaseCommit
	upgradeSum     = "ef56ef56ef56ef56ef56ef56ef56ef56ef56ef56ef56ef56ef56ef56ef56ef56"
)

// upgrade runs agent-upgrade.yml's rollout step, taken from the workflow
// file, against the fake aws CLI and the simulated targets r registered;
// it returns the step's output and exit code.
func (r *rollout) upgrade() (string, int) {
	r.t.Helper()
	b, err := os.ReadFile("../ssm-agent-upgrade.yaml")
	if err != nil {
		r.t.Fatal(err)
	}
	doc := strings.ReplaceAll(string(b), "OWNER", owner)
	if err := os.WriteFile(filepath.Join(r.state, "documents", "MyWebChat-AgentUpgrade.yaml"), []byte(doc), 0o644); err != nil {
		r.t.Fatal(err)
	}
	ctx := gha.Context{
		"vars":   r.vars,
		"github": map[string]any{"run_id": "4343", "event_name": "workflow_dispatch"},
		"inputs": map[string]any{"release": upgradeRelease},
		"steps":  map[string]any{"sum": map[string]any{"outputs": map[string]any{"sha256": upgradeSum}}},
	}
	return r.runToEnd(r.stepCommand("agent-upgrade.yml", "upgrade", ctx, "GITHUB_RUN_ID=4343"))
}

// TestAgentUpgradeReportsEveryTaggedHost: the upgrade reaches every managed
// host one at a time; a tagged host SSM does not manage, or one whose SSM
// agent is not connected, is named in the report and fails the job: no
// silent success.
func TestAgentUpgradeReportsEveryTaggedHost(t *testing.T) {
	r := newRollout(t)
	r.host("i-01", true, "", "")
	r.host("i-02", true, "", "")
	r.host("i-03", false, "", "") // tagged, never registered with SSM
	out, code := r.upgrade()
	if code != 1 {
		t.Fatalf("exit %d with unreached tagged hosts, want 1:\n%s", code, out)
	}
	wantReport(t, out, map[string]string{
		"i-01": "upgraded", "i-02": "upgraded",
		"i-03": "NOT UPGRADED: tagged App=mywebchat (running) but not managed by SSM",
	})
	if r.ran("i-03") {
		t.Error("an unreachable host ran the upgrade")
	}
	sends := r.calls("ssm", "send-command")
	if len(sends) != 2 {
		t.Fatalf("%d send-command calls, want 2 (one per reachable host)", len(sends))
	}
	for i, want := range []string{"i-01", "i-02"} {
		if got := argAfter(sends[i], "--instance-ids"); got != want {
			t.Errorf("send %d targets %q, want %s", i, got, want)
		}
		if got := argAfter(sends[i], "--parameters"); !strings.Contains(got, upgradeRelease) || !strings.Contains(got, upgradeSum) {
			t.Errorf("send %d parameters %q", i, got)
		}
	}
	summary, _ := os.ReadFile(filepath.Join(r.work, "summary"))
	if !strings.Contains(string(summary), "`i-03`: NOT UPGRADED") {
		t.Errorf("job summary: %s", summary)
	}

	// A host whose SSM agent is not connected, alone, fails the job too.
	r3 := newRollout(t)
	r3.host("i-01", true, "", "")
	r3.host("i-02", true, "ConnectionLost", "")
	out, code = r3.upgrade()
	if code != 1 {
		t.Fatalf("exit %d with a host whose SSM agent is not connected, want 1:\n%s", code, out)
	}
	wantReport(t, out, map[string]string{
		"i-01": "upgraded", "i-02": "NOT UPGRADED: its SSM agent is not connected (ConnectionLost)",
	})

	// With every tagged host reached, it succeeds.
	r2 := newRollout(t)
	r2.host("i-01", true, "", "")
	r2.host("i-02", true, "", "")
	if out, code := r2.upgrade(); code != 0 {
		t.Fatalf("exit %d with every host upgraded, want 0:\n%s", code, out)
	}
}

// TestAgentUpgradeStopsAtFailure: the second host fails; the third is never
// sent the upgrade and is named, and the job fails.
func TestAgentUpgradeStopsAtFailure(t *testing.T) {
	r := newRollout(t)
	r.host("i-01", true, "", "")
	r.host("i-02", true, "", "EXIT=4")
	r.host("i-03", true, "", "")
	out, code := r.upgrade()
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	wantReport(t, out, map[string]string{
		"i-01": "upgraded", "i-02": "FAILED: Failed (Failed), exit code 4",
		"i-03": "not upgraded: the rollout stopped at a failure",
	})
	if r.ran("i-03") {
		t.Error("the host after the failure ran the upgrade")
	}
}

// TestAgentUpgradeNoTaggedHost: nothing to upgrade is a failure, not a
// silent success.
func TestAgentUpgradeNoTaggedHost(t *testing.T) {
	r := newRollout(t)
	out, code := r.upgrade()
	if code != 1 || !strings.Contains(out, "no instance tagged App=mywebchat can be reached over SSM") {
		t.Fatalf("exit %d with no tagged host, want 1 and the reason:\n%s", code, out)
	}
}
