package deploytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/rehearsal/fakeaws/fakeawstest"
	gha "github.com/mywebchat/mywebchat/test/rehearsal/workflow"
)

// The rollout tests run release.yml's rollout step, taken from the workflow
// file itself, with bash and the environment the workflow gives it, against
// the fake aws CLI (test/rehearsal/fakeaws) and simulated targets: hosts
// that run a short shell script in a folder instead of the deploy agent.

const (
	releaseDigest = "sha256:" + "ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12ab12"
	nginxDigest   = "sha256:" + "cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34cd34"
	releaseCommit = "0123456789abcdef0123456789abcdef01234567"
	appRef        = "ghcr.io/acme/mywebchat-app@" + releaseDigest
	nginxRef      = "ghcr.io/acme/mywebchat-nginx@" + nginxDigest
)

// simulatedDeploy stands in for the document's commands on a simulated
// target: it prints what the agent would and exits with $EXIT (default 0).
const simulatedDeploy = `echo "mywebchat: deploying $FAKESSM_PARAM_ImageRef on $FAKESSM_INSTANCE_ID"; ` +
	`touch "$FAKESSM_INSTANCE_ID.ran"; sleep "${DELAY:-0}"; echo "mywebchat: deploy-agent exit code ${EXIT:-0}"; exit "${EXIT:-0}"`

// awsBin is the fake aws CLI, built once by TestMain.
var awsBin string

func TestMain(m *testing.M) { fakeawstest.Main(m, &awsBin) }

// rollout is one run of the rollout step against a fresh fake AWS.
type rollout struct {
	t     *testing.T
	state string
	work  string
	vars  map[string]any
	nginx string // NginxImageRef the refs step chose ("" keeps nginx)
}

func newRollout(t *testing.T) *rollout {
	t.Helper()
	r := &rollout{t: t, state: t.TempDir(), work: t.TempDir(), nginx: nginxRef,
		vars: map[string]any{"DEPLOY_POLL_SECONDS": "0.1"}}
	t.Cleanup(r.stopCommands)
	b, err := os.ReadFile("../ssm-deploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.state, "documents"), 0o755); err != nil {
		t.Fatal(err)
	}
	doc := strings.ReplaceAll(string(b), "OWNER", owner)
	if err := os.WriteFile(filepath.Join(r.state, "documents", "MyWebChat-Deploy.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// stopCommands cancels what a failed test may have left running.
func (r *rollout) stopCommands() { fakeawstest.StopCommands(r.t, r.aws) }

// aws runs the fake CLI on this rollout's state and returns its standard
// output, trimmed.
func (r *rollout) aws(args ...string) (string, error) {
	cmd := exec.Command(awsBin, args...)
	cmd.Env = append(os.Environ(), "FAKEAWS_STATE_DIR="+r.state)
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}

// instance is the fake's registry entry (test/rehearsal/fakeaws doc comment).
type instance struct {
	InstanceId string
	Tags       map[string]string
	Managed    bool
	PingStatus string `json:",omitempty"`
	Exec       map[string]string
}

// host registers a simulated target tagged App=mywebchat; env is set for
// its script (EXIT, DELAY).
func (r *rollout) host(id string, managed bool, ping string, env string) {
	r.t.Helper()
	in := instance{InstanceId: id, Tags: map[string]string{"App": "mywebchat", "Name": id}, Managed: managed, PingStatus: ping,
		Exec: map[string]string{"Kind": "local", "Dir": filepath.Join(r.state, "hosts", id), "Script": env + " ; " + simulatedDeploy}}
	if env == "" {
		in.Exec["Script"] = simulatedDeploy
	}
	b, err := json.Marshal(in)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.state, "instances"), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.state, "instances", id+".json"), b, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// ran reports whether the simulated target id ran the deploy of any command.
func (r *rollout) ran(id string) bool {
	m, _ := filepath.Glob(filepath.Join(r.state, "hosts", id, "orchestration", "*", "deploy", id+".ran"))
	return len(m) > 0
}

// command prepares the step: release.yml's deploy job, step "rollout".
func (r *rollout) command() *exec.Cmd {
	r.t.Helper()
	ctx := gha.Context{
		"vars":   r.vars,
		"github": map[string]any{"run_id": "4242", "sha": releaseCommit, "event_name": "push"},
		"steps": map[string]any{"refs": map[string]any{"outputs": map[string]any{
			"app": appRef, "nginx": r.nginx, "commit": releaseCommit}}},
	}
	return r.stepCommand("release.yml", "deploy", ctx, "GITHUB_RUN_ID=4242", "GITHUB_SHA="+releaseCommit)
}

// stepCommand prepares the step "rollout" of a workflow's job as GitHub
// Actions would run it, against the fake aws CLI and this rollout's state,
// with env added to the runner's environment.
func (r *rollout) stepCommand(workflow, jobName string, ctx gha.Context, env ...string) *exec.Cmd {
	r.t.Helper()
	job, err := gha.Load("../../.github/workflows/"+workflow, jobName)
	if err != nil {
		r.t.Fatal(err)
	}
	step, err := job.Step("rollout")
	if err != nil {
		r.t.Fatal(err)
	}
	base := append([]string{
		"PATH=" + filepath.Dir(awsBin) + ":" + os.Getenv("PATH"),
		"HOME=" + r.work,
		// The fake compiles its Java matcher once into the user's cache.
		"XDG_CACHE_HOME=" + userCache(),
		"FAKEAWS_STATE_DIR=" + r.state,
		"CI=true", "GITHUB_ACTIONS=true",
		"GITHUB_OUTPUT=" + filepath.Join(r.work, "output"),
		"GITHUB_STEP_SUMMARY=" + filepath.Join(r.work, "summary"),
	}, env...)
	cmd, err := job.Command(r.t.Context(), step, ctx, base, r.work)
	if err != nil {
		r.t.Fatal(err)
	}
	return cmd
}

func userCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return d
	}
	return os.TempDir()
}

// run runs the step to its end and returns its output and exit code.
func (r *rollout) run() (string, int) {
	r.t.Helper()
	return r.runToEnd(r.command())
}

// runToEnd runs cmd to its end and returns its output and exit code.
func (r *rollout) runToEnd(cmd *exec.Cmd) (string, int) {
	r.t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatal(err)
	}
	return out.String(), code
}

// background is the step running while the test acts on it.
type background struct {
	t    *testing.T
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// startUntilRan starts the step and returns once host id's deploy has begun;
// if it has not by deadline the step is killed and the test fails.
func (r *rollout) startUntilRan(id string, deadline time.Time) *background {
	r.t.Helper()
	b := &background{t: r.t, cmd: r.command(), out: &bytes.Buffer{}, done: make(chan error, 1)}
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	for !r.ran(id) {
		if time.Now().After(deadline) {
			b.cmd.Process.Kill()
			r.t.Fatalf("%s never started:\n%s", id, b.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b
}

// exit waits up to d for the step to end and returns how it ended; if it is
// still running then, it is killed and the test fails with why, the output
// following.
func (b *background) exit(d time.Duration, why string) error {
	b.t.Helper()
	select {
	case err := <-b.done:
		return err
	case <-time.After(d):
		b.cmd.Process.Kill()
		b.t.Fatalf("%s:\n%s", why, b.out.String())
		return nil
	}
}

// report returns the step's report lines: "i-1: deployed", ...
func report(out string) map[string]string {
	lines := map[string]string{}
	re := regexp.MustCompile(`^  (i-[0-9a-z]+): (.*)$`)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			lines[m[1]] = m[2]
		}
	}
	return lines
}

// calls returns the fake's calls whose argv starts with prefix.
func (r *rollout) calls(prefix ...string) [][]string {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.state, "calls.log"))
	if err != nil {
		r.t.Fatal(err)
	}
	var out [][]string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var c struct{ Argv []string }
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			r.t.Fatal(err)
		}
		if len(c.Argv) >= len(prefix) && strings.Join(c.Argv[:len(prefix)], " ") == strings.Join(prefix, " ") {
			out = append(out, c.Argv)
		}
	}
	return out
}

// recorded returns the current-release parameter, "" when none was written.
func (r *rollout) recorded() string {
	r.t.Helper()
	out, err := r.aws("ssm", "get-parameter", "--name", "/mywebchat/current-release",
		"--query", "Parameter.Value", "--output", "text")
	if err != nil {
		return ""
	}
	return out
}

func wantReport(t *testing.T, out string, want map[string]string) {
	t.Helper()
	got := report(out)
	for id, w := range want {
		if !strings.HasPrefix(got[id], w) {
			t.Errorf("report for %s: %q, want it to start with %q", id, got[id], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("report has %d hosts, want %d:\n%s", len(got), len(want), out)
	}
}

func TestRolloutSucceeds(t *testing.T) {
	r := newRollout(t)
	for _, id := range []string{"i-01", "i-02", "i-03"} {
		r.host(id, true, "", "")
	}
	out, code := r.run()
	if code != 0 {
		t.Fatalf("exit %d, want 0:\n%s", code, out)
	}
	wantReport(t, out, map[string]string{"i-01": "deployed", "i-02": "deployed", "i-03": "deployed"})
	// The agent's own output is printed, between stop-commands markers.
	if !strings.Contains(out, "mywebchat: deploying "+appRef+" on i-02") || !strings.Contains(out, "::stop-commands::") {
		t.Errorf("agent output missing:\n%s", out)
	}
	// One host per command, one after another (DEPLOY_MAX_CONCURRENCY 1).
	sends := r.calls("ssm", "send-command")
	if len(sends) != 3 {
		t.Fatalf("%d send-command calls, want 3", len(sends))
	}
	for i, s := range sends {
		if got := argAfter(s, "--instance-ids"); got != fmt.Sprintf("i-0%d", i+1) {
			t.Errorf("send %d targets %q", i, got)
		}
	}
	var rec map[string]string
	if err := json.Unmarshal([]byte(r.recorded()), &rec); err != nil {
		t.Fatalf("current release %q: %v", r.recorded(), err)
	}
	if rec["app"] != appRef || rec["nginx"] != nginxRef || rec["commit"] != releaseCommit {
		t.Errorf("current release %v", rec)
	}
	// An app-only release keeps the nginx image recorded before.
	r.nginx = ""
	if out, code := r.run(); code != 0 {
		t.Fatalf("app-only rollout: exit %d\n%s", code, out)
	}
	if err := json.Unmarshal([]byte(r.recorded()), &rec); err != nil || rec["nginx"] != nginxRef {
		t.Errorf("after an app-only release: %v %v", rec, err)
	}
	summary, _ := os.ReadFile(filepath.Join(r.work, "summary"))
	if !strings.Contains(string(summary), "`i-03`: deployed") {
		t.Errorf("job summary: %s", summary)
	}
}

func argAfter(argv []string, opt string) string {
	for i, a := range argv {
		if a == opt {
			var vals []string
			for _, v := range argv[i+1:] {
				if strings.HasPrefix(v, "--") {
					break
				}
				vals = append(vals, v)
			}
			return strings.Join(vals, " ")
		}
	}
	return ""
}

// TestRolloutStopsAtFailure: the third host fails; the fourth and fifth are
// never sent the command, the job fails, and nothing is recorded.
func TestRolloutStopsAtFailure(t *testing.T) {
	r := newRollout(t)
	for i := 1; i <= 5; i++ {
		env := ""
		if i == 3 {
			env = "EXIT=1"
		}
		r.host(fmt.Sprintf("i-0%d", i), true, "", env)
	}
	out, code := r.run()
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	wantReport(t, out, map[string]string{
		"i-01": "deployed", "i-02": "deployed", "i-03": "FAILED: Failed (Failed), agent exit code 1",
		"i-04": "not deployed: the rollout stopped", "i-05": "not deployed: the rollout stopped",
	})
	if r.ran("i-04") || r.ran("i-05") {
		t.Error("a host after the failure ran the deploy")
	}
	if len(r.calls("ssm", "send-command")) != 3 {
		t.Errorf("%d sends, want 3", len(r.calls("ssm", "send-command")))
	}
	if got := r.recorded(); got != "" {
		t.Errorf("a failed rollout recorded %q", got)
	}
}

// TestRolloutUnreachableHosts: a tagged instance SSM does not manage and a
// managed one whose agent is down are both named; the others are deployed,
// the release is recorded (no host failed it), and the job fails.
func TestRolloutUnreachableHosts(t *testing.T) {
	r := newRollout(t)
	r.host("i-01", true, "", "")
	r.host("i-02", false, "", "")
	r.host("i-03", true, "ConnectionLost", "")
	r.host("i-04", true, "", "")
	out, code := r.run()
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	wantReport(t, out, map[string]string{
		"i-01": "deployed", "i-04": "deployed",
		"i-02": "NOT DEPLOYED: tagged App=mywebchat (running) but not managed by SSM",
		"i-03": "NOT DEPLOYED: its SSM agent is not connected (ConnectionLost)",
	})
	if !strings.Contains(r.recorded(), appRef) {
		t.Errorf("current release not recorded: %q", r.recorded())
	}
}

// TestRolloutAgentDownAtDelivery: an agent that drops between the listing and
// the send makes the invocation Undeliverable: named, job fails, others go on.
func TestRolloutAgentDownAtDelivery(t *testing.T) {
	r := newRollout(t)
	r.host("i-01", true, "", "")
	r.host("i-02", true, "", "")
	r.host("i-03", true, "", "")
	// i-01's deploy takes i-02's agent down before i-02 is sent the command.
	r.host("i-01", true, "", `sed -i 's/"PingStatus":""/"PingStatus":"ConnectionLost"/; s/"Managed":true/"Managed":true,"PingStatus":"ConnectionLost"/' `+
		filepath.Join(r.state, "instances", "i-02.json"))
	out, code := r.run()
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	wantReport(t, out, map[string]string{
		"i-01": "deployed", "i-03": "deployed",
		"i-02": "NOT DEPLOYED: SSM could not deliver the command (Undeliverable)",
	})
}

// TestRolloutListInvocationsFails: when SSM cannot say how the hosts did,
// the job fails instead of reporting success.
func TestRolloutListInvocationsFails(t *testing.T) {
	r := newRollout(t)
	r.host("i-01", true, "", "")
	r.host("i-02", true, "", "")
	if err := os.MkdirAll(filepath.Join(r.state, "faults"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.state, "faults", "ssm.list-command-invocations"), []byte("ThrottlingException: Rate exceeded"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := r.run()
	if code == 0 {
		t.Fatalf("exit 0 although list-command-invocations failed:\n%s", out)
	}
	if !strings.Contains(out, "ThrottlingException") {
		t.Errorf("the error is not shown:\n%s", out)
	}
	wantReport(t, out, map[string]string{
		"i-01": "UNKNOWN: the step failed before it read this host's result",
		"i-02": "not deployed: the rollout was stopped",
	})
	if r.recorded() != "" || r.ran("i-02") {
		t.Error("the rollout went on after it could not read the results")
	}
}

// TestRolloutPollFails: SSM stops answering while a deploy runs; the step
// fails, and does not leave the command running.
func TestRolloutPollFails(t *testing.T) {
	r := newRollout(t)
	r.host("i-01", true, "", "DELAY=30")
	r.host("i-02", true, "", "")
	step := r.startUntilRan("i-01", time.Now().Add(30*time.Second))
	if err := os.WriteFile(filepath.Join(r.state, "faults", "ssm.list-commands"), []byte("InternalServerError: try again"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := step.exit(20*time.Second, "the step went on polling a failing SSM")
	if err == nil {
		t.Fatalf("exit 0 although list-commands failed:\n%s", step.out.String())
	}
	if len(r.calls("ssm", "cancel-command")) != 1 {
		t.Errorf("the command in flight was not cancelled:\n%s", step.out.String())
	}
	wantReport(t, step.out.String(), map[string]string{
		"i-01": "NOT FINISHED: its deploy was cancelled",
		"i-02": "not deployed: the rollout was stopped",
	})
	os.Remove(filepath.Join(r.state, "faults", "ssm.list-commands"))
}

// TestRolloutCancelled: the runner signals the step when the job is
// cancelled; the step cancels the SSM command, the running host's deploy is
// stopped, the next host never gets it, and the report says so.
func TestRolloutCancelled(t *testing.T) {
	r := newRollout(t)
	r.host("i-01", true, "", "")
	r.host("i-02", true, "", "DELAY=60")
	r.host("i-03", true, "", "")
	// The same deadline bounds the wait for the command to end Cancelled below.
	deadline := time.Now().Add(30 * time.Second)
	step := r.startUntilRan("i-02", deadline)
	step.cmd.Process.Signal(syscall.SIGINT)
	// The runner's SIGTERM would follow after 7.5 s.
	err := step.exit(7*time.Second, "the step did not end within 7s of SIGINT")
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want 130", err)
	}
	cancels := r.calls("ssm", "cancel-command")
	if len(cancels) != 1 {
		t.Fatalf("%d cancel-command calls, want 1:\n%s", len(cancels), step.out.String())
	}
	id := argAfter(cancels[0], "--command-id")
	wantReport(t, step.out.String(), map[string]string{
		"i-01": "deployed", "i-02": "NOT FINISHED: its deploy was cancelled",
		"i-03": "not deployed: the rollout was stopped",
	})
	// The fake's runner ends the command Cancelled and kills the deploy.
	for {
		st, err := r.aws("ssm", "list-commands", "--command-id", id, "--query", "Commands[0].Status", "--output", "text")
		if err != nil {
			t.Fatal(err)
		}
		if st == "Cancelled" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("command %s is %s, want Cancelled", id, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r.ran("i-03") || r.recorded() != "" {
		t.Error("the rollout went on after the cancel")
	}
}

// TestRolloutRefusesBadSettings: bad repository variables change nothing.
func TestRolloutRefusesBadSettings(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"DEPLOY_MAX_CONCURRENCY", "0", "DEPLOY_MAX_CONCURRENCY must be"},
		{"DEPLOY_MAX_CONCURRENCY", "101%", "DEPLOY_MAX_CONCURRENCY must be"},
		{"DEPLOY_DELIVERY_TIMEOUT", "10", "DEPLOY_DELIVERY_TIMEOUT must be"},
		{"DEPLOY_POLL_SECONDS", "1;reboot", "DEPLOY_POLL_SECONDS must be"},
		{"DEPLOY_TIMEOUT_MINUTES", "2", "DEPLOY_TIMEOUT_MINUTES must be"},
	} {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			r := newRollout(t)
			r.host("i-01", true, "", "")
			r.vars[tt.name] = tt.value
			out, code := r.run()
			if code != 2 || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s", code, tt.want, out)
			}
			if _, err := os.Stat(filepath.Join(r.state, "calls.log")); err == nil {
				t.Error("aws was called despite the bad setting")
			}
		})
	}
}
