package zdt

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/httpload"
	"github.com/mywebchat/mywebchat/test/e2e/stack"
)

// FaultResult is one fault scenario's outcome.
type FaultResult struct {
	Name    string
	Pass    bool
	Skipped string // why the scenario did not run; empty when it ran
	Detail  string // what happened, for the report
	Report  *Report
}

// Fault is one scenario run against an agent that serves image A or B.
type Fault struct {
	Name  string
	Short bool // part of the short form (make test)
	Run   func(ctx context.Context, f *FaultEnv) FaultResult
}

// FaultEnv is the agent scenario the faults run against, with the load each
// of them is measured under.
type FaultEnv struct {
	Env  *Env
	S    *Scenario
	Load Load
	Log  func(string, ...any)
	// EngineRestart is a shell command that restarts the Docker engine
	// (e.g. "systemctl restart docker"); empty skips that fault, since on a
	// shared machine the engine is not the harness's to restart.
	EngineRestart string
}

// agent is the scenario's agent.
func (f *FaultEnv) agent() *stack.Agent { return f.S.Agent }

// other returns the real image that is not serving, so a good deploy always
// changes color.
func (f *FaultEnv) other(ctx context.Context) string {
	st, err := f.agent().Status(ctx)
	if err == nil && st.Active != nil && sameImage(ctx, st.Active.Image, st.Active.Digest, f.Env.Images.B) {
		return f.Env.Images.A
	}
	return f.Env.Images.B
}

// sameImage matches what status reports (a reference, an image ID or a
// repo@digest) against a local tag.
func sameImage(ctx context.Context, image, digest, tag string) bool {
	if image == tag {
		return true
	}
	id, err := stack.Docker(ctx, "image", "inspect", "--format", "{{.Id}}", tag)
	if err != nil {
		return false
	}
	id = strings.TrimSpace(id)
	return strings.Contains(image, id) || (digest != "" && strings.Contains(id, strings.TrimPrefix(digest, "sha256:")))
}

// snapshot is what must not change when a deploy is refused.
type snapshot struct {
	color, image string
	upstream     string
}

func (f *FaultEnv) snap(ctx context.Context) (snapshot, error) {
	st, err := f.agent().Status(ctx)
	if err != nil {
		return snapshot{}, err
	}
	if st.Active == nil {
		return snapshot{}, fmt.Errorf("status: no active release")
	}
	up, err := os.ReadFile(f.S.Nginx.UpstreamFile())
	if err != nil {
		return snapshot{}, fmt.Errorf("read upstream: %w", err)
	}
	return snapshot{st.Active.Color, st.Active.Image, string(up)}, nil
}

// servingColor asks nginx which color answers.
func (f *FaultEnv) servingColor(ctx context.Context) (string, error) {
	code, body, err := stack.Get(ctx, f.S.URL()+"/healthz")
	if err != nil {
		return "", err
	}
	if code != 200 {
		return "", fmt.Errorf("healthz through nginx: HTTP %d", code)
	}
	for _, c := range []string{"blue", "green"} {
		if strings.Contains(body, `"color":"`+c+`"`) {
			return c, nil
		}
	}
	return "", fmt.Errorf("healthz through nginx names no color: %s", body)
}

// unchanged checks that the release, the upstream file and the serving
// color are what they were before.
func (f *FaultEnv) unchanged(ctx context.Context, before snapshot) error {
	after, err := f.snap(ctx)
	if err != nil {
		return err
	}
	if after != before {
		return fmt.Errorf("state changed: before %+v, after %+v", before, after)
	}
	c, err := f.servingColor(ctx)
	if err != nil {
		return err
	}
	if c != before.color {
		return fmt.Errorf("nginx serves %s, the agent says %s", c, before.color)
	}
	return nil
}

// measure runs act under the fault load and returns the report.
func (f *FaultEnv) measure(ctx context.Context, name string, act func(*Report, *httpload.Windows)) (*Report, error) {
	return Measure(ctx, name, f.S.URL(), f.Load, 3*time.Minute, func(rep *Report, w *httpload.Windows) {
		sleep(ctx, time.Second)
		start := time.Now()
		act(rep, w)
		w.Add(start, time.Now().Add(f.Load.Tail))
		sleep(ctx, time.Second)
	})
}

// zeroDowntime is the user-facing assertion shared by the faults.
func zeroDowntime(rep *Report) error {
	var errs []string
	if rep.HTTP.Failed > 0 {
		errs = append(errs, fmt.Sprintf("%d failed HTTP requests %v", rep.HTTP.Failed, rep.HTTP.ByReason))
	}
	if rep.WS != nil && (rep.WS.Lost > 0 || rep.WS.Doubled > 0 || rep.WS.Unacked > 0 || rep.WS.NonEmptyOutbox > 0) {
		errs = append(errs, "ws: "+rep.WS.String())
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// refused is the shape of every "bad deploy" fault: the deploy must exit
// with want, and nothing may change, with no failed request meanwhile.
func refused(name, image string, want int) Fault { return refusedSaying(name, image, want, "") }

// refusedSaying is refused whose deploy output must also contain say: the
// step that refused it, so a fault stopped somewhere else does not pass.
func refusedSaying(name, image string, want int, say string) Fault {
	return Fault{Name: name, Short: true, Run: func(ctx context.Context, f *FaultEnv) FaultResult {
		res := FaultResult{Name: name}
		before, err := f.snap(ctx)
		if err != nil {
			res.Detail = err.Error()
			return res
		}
		img := image
		switch image {
		case "never-healthy":
			img = f.Env.Images.NeverHealthy
		case "crash":
			img = f.Env.Images.Crash
		case "wrong-color":
			img = f.Env.Images.WrongColor
		case "foreign":
			img = f.Env.Images.ForeignImage
		}
		var dr stack.DeployResult
		rep, err := f.measure(ctx, name, func(rep *Report, _ *httpload.Windows) {
			dr = f.agent().Deploy(ctx, img)
			rep.Deploys = append(rep.Deploys, dr)
		})
		res.Report = rep
		if err != nil {
			res.Detail = err.Error()
			return res
		}
		var problems []string
		if dr.Exit != want {
			problems = append(problems, fmt.Sprintf("exit %d, want %d", dr.Exit, want))
		}
		if strings.TrimSpace(dr.Output) == "" {
			problems = append(problems, "no message on the output")
		}
		if say != "" && !strings.Contains(dr.Output, say) {
			problems = append(problems, fmt.Sprintf("the output does not say %q", say))
		}
		if err := f.unchanged(ctx, before); err != nil {
			problems = append(problems, err.Error())
		}
		if err := zeroDowntime(rep); err != nil {
			problems = append(problems, err.Error())
		}
		res.Pass = len(problems) == 0
		res.Detail = fmt.Sprintf("exit %d in %.1fs: %s", dr.Exit, dr.Duration.Seconds(), lastLine(dr.Output))
		if !res.Pass {
			res.Detail += " — " + strings.Join(problems, "; ")
		}
		return res
	}}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	l := lines[len(lines)-1]
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return l
}

// Faults lists every fault scenario in the order they run.
func Faults() []Fault {
	fs := []Fault{
		refusedSaying("new image never healthy", "never-healthy", 1, `last: HTTP 500 {"status":"broken"}`),
		refusedSaying("new image crashes on start", "crash", 1, "crashing on start, as asked"),
		refusedSaying("new image reports the wrong color", "wrong-color", 1, "rolled_back: verify through nginx failed"),
		refused("foreign image", "foreign", 2),
		refused("malformed reference", "mywebchat/e2e-app:not a tag!", 2),
		refused("reference with an empty tag", "mywebchat/e2e-app:", 2),
		{Name: "garbage and oversized queue files", Short: true, Run: garbageQueue},
		{Name: "two deploys at once", Short: true, Run: twoAtOnce},
		{Name: "deploy during a rollback", Short: false, Run: deployDuringRollback},
		{Name: "broken nginx config", Short: true, Run: brokenNginx},
		{Name: "broken upstream template", Short: false, Run: brokenTemplate},
		{Name: "active chat container killed", Short: true, Run: activeKilled},
		{Name: "host reboot", Short: false, Run: reboot},
		{Name: "docker engine restart", Short: false, Run: engineRestart},
	}
	return fs
}

// garbageQueue drops unreadable requests where the CLI puts real ones: the
// daemon must reject them with a clear log line, keep running, change
// nothing, and take the next real deploy.
func garbageQueue(ctx context.Context, f *FaultEnv) FaultResult {
	res := FaultResult{Name: "garbage and oversized queue files"}
	before, err := f.snap(ctx)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	qdir := filepath.Join(f.agent().StateDir(), "queue")
	big := make([]byte, 2<<20)
	_, _ = rand.Read(big)
	files := map[string][]byte{
		"20200101T000000Z-00000001.json": []byte("{not json"),
		"20200101T000000Z-00000002.json": big,
		"20200101T000000Z-00000003.json": []byte(`{"id":"20200101T000000Z-00000003","kind":"deploy","image":"mywebchat/e2e-app:a","requested":"2020-01-01T00:00:00Z","extra":1}`),
		"not-an-id.json":                 []byte(`{"kind":"deploy","image":"evil/image:x"}`),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(qdir, name), b, 0o600); err != nil {
			res.Detail = err.Error()
			return res
		}
	}
	// The daemon watches the folder; give it a bounded while to clear it.
	var left []string
	for range 50 {
		left = left[:0]
		entries, _ := os.ReadDir(qdir)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ".") {
				left = append(left, e.Name())
			}
		}
		if len(left) == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var problems []string
	if len(left) > 0 {
		problems = append(problems, fmt.Sprintf("queue still holds %v after 10s", left))
	}
	if !f.agent().Running() {
		problems = append(problems, "the daemon exited: "+f.agent().LogTail(10))
	}
	if err := f.unchanged(ctx, before); err != nil {
		problems = append(problems, err.Error())
	}
	if len(left) > 0 {
		for name := range files {
			os.Remove(filepath.Join(qdir, name))
		}
	}
	dr := f.agent().Deploy(ctx, f.other(ctx))
	if dr.Exit != 0 {
		problems = append(problems, fmt.Sprintf("the next real deploy exited %d: %s", dr.Exit, lastLine(dr.Output)))
	}
	res.Pass = len(problems) == 0
	res.Detail = fmt.Sprintf("%d rejected files, e.g. %s", countLog(f.agent().LogTail(400), "rejecting request file"), grepLog(f.agent().LogTail(400), "rejecting request file"))
	if !res.Pass {
		res.Detail = strings.Join(problems, "; ") + " — " + res.Detail
	}
	return res
}

// countLog counts log lines that mention word.
func countLog(log, word string) int { return strings.Count(log, word) }

// grepLog returns the last log line that mentions any of words.
func grepLog(log string, words ...string) string {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		for _, w := range words {
			if strings.Contains(strings.ToLower(lines[i]), w) {
				return lastLine(lines[i])
			}
		}
	}
	return "(nothing about it)"
}

// waitDeploying polls status until a deploy is in progress.
func (f *FaultEnv) waitDeploying(ctx context.Context, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st, err := f.agent().Status(ctx)
		if err == nil && st.Deploying != nil {
			return st.Deploying.Step, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("no deploy in progress within %s", timeout)
}

// concurrent starts first in the background, waits until the agent is
// deploying, then runs second, which must exit 3 while first succeeds.
func concurrent(ctx context.Context, f *FaultEnv, name string, first func() stack.DeployResult) FaultResult {
	res := FaultResult{Name: name}
	var d1, d2 stack.DeployResult
	var problems []string
	rep, err := f.measure(ctx, name, func(rep *Report, _ *httpload.Windows) {
		done := make(chan stack.DeployResult, 1)
		go func() { done <- first() }()
		if _, err := f.waitDeploying(ctx, 30*time.Second); err != nil {
			problems = append(problems, err.Error())
		}
		d2 = f.agent().Deploy(ctx, f.Env.Images.A)
		d1 = <-done
		rep.Deploys = append(rep.Deploys, d1)
	})
	res.Report = rep
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	if d1.Exit != 0 {
		problems = append(problems, fmt.Sprintf("first exited %d: %s", d1.Exit, lastLine(d1.Output)))
	}
	if d2.Exit != 3 {
		problems = append(problems, fmt.Sprintf("second exited %d, want 3: %s", d2.Exit, lastLine(d2.Output)))
	}
	if err := zeroDowntime(rep); err != nil {
		problems = append(problems, err.Error())
	}
	res.Pass = len(problems) == 0
	res.Detail = fmt.Sprintf("first exit %d, second exit %d: %s", d1.Exit, d2.Exit, lastLine(d2.Output))
	if !res.Pass {
		res.Detail += " — " + strings.Join(problems, "; ")
	}
	return res
}

func twoAtOnce(ctx context.Context, f *FaultEnv) FaultResult {
	img := f.other(ctx)
	return concurrent(ctx, f, "two deploys at once", func() stack.DeployResult { return f.agent().Deploy(ctx, img) })
}

func deployDuringRollback(ctx context.Context, f *FaultEnv) FaultResult {
	// A rollback needs a previous release.
	if dr := f.agent().Deploy(ctx, f.other(ctx)); dr.Exit != 0 {
		return FaultResult{Name: "deploy during a rollback", Detail: fmt.Sprintf("preparing deploy exited %d: %s", dr.Exit, lastLine(dr.Output))}
	}
	return concurrent(ctx, f, "deploy during a rollback", func() stack.DeployResult { return f.agent().Command(ctx, "rollback") })
}

// brokenNginx drops a broken server block into the site's operator include
// folder: the agent's config test must refuse the switch before any reload.
func brokenNginx(ctx context.Context, f *FaultEnv) FaultResult {
	broken := filepath.Join(f.S.Nginx.HostDir(), "broken.conf")
	if err := os.WriteFile(broken, []byte("server { listen 127.0.0.1:1 ; this_is_not_a_directive on; }\n"), 0o644); err != nil {
		return FaultResult{Name: "broken nginx config", Detail: err.Error()}
	}
	defer os.Remove(broken)
	return refused("broken nginx config", f.other(ctx), 1).Run(ctx, f)
}

// brokenTemplate points the agent at an upstream template that does not
// parse: validate exits 2 and a deploy is refused before any reload.
func brokenTemplate(ctx context.Context, f *FaultEnv) FaultResult {
	res := FaultResult{Name: "broken upstream template"}
	a := f.agent()
	tmpl := filepath.Join(a.Dir, "broken.tmpl")
	if err := os.WriteFile(tmpl, []byte("upstream chat {\n    server {{ .Nope \n}\n"), 0o600); err != nil {
		res.Detail = err.Error()
		return res
	}
	orig, err := os.ReadFile(a.ConfigPath())
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	defer func() {
		_ = os.WriteFile(a.ConfigPath(), orig, 0o600)
		time.Sleep(time.Second) // the daemon watches its config
	}()
	if err := os.WriteFile(a.ConfigPath(), []byte(strings.Replace(string(orig), "proxy:\n", "proxy:\n  template: "+tmpl+"\n", 1)), 0o600); err != nil {
		res.Detail = err.Error()
		return res
	}
	time.Sleep(time.Second)
	v := a.Command(ctx, "validate")
	r := refused("broken upstream template", f.other(ctx), 1).Run(ctx, f)
	if r.Report != nil && len(r.Report.Deploys) == 1 && r.Report.Deploys[0].Exit == 2 {
		// Refusing it as invalid input is as good as a failed deploy:
		// nothing changed either way; unchanged() has checked that.
		r = refused("broken upstream template", f.other(ctx), 2).Run(ctx, f)
	}
	r.Detail = fmt.Sprintf("validate exit %d; deploy %s", v.Exit, r.Detail)
	if v.Exit != 2 {
		r.Pass = false
		r.Detail += fmt.Sprintf(" — validate exited %d, want 2", v.Exit)
	}
	return r
}

// converge waits until the agent reports a healthy active color with no
// deploy in progress and nginx serves that color.
func (f *FaultEnv) converge(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var last error
	for time.Since(start) < timeout {
		st, err := f.agent().Status(ctx)
		switch {
		case err != nil:
			last = err
		case st.Active == nil || !st.Active.Healthy:
			last = fmt.Errorf("active not healthy: %+v", st.Active)
		case st.Deploying != nil:
			last = fmt.Errorf("still deploying: %+v", st.Deploying)
		default:
			c, err := f.servingColor(ctx)
			if err == nil && c == st.Active.Color {
				return time.Since(start), nil
			}
			last = fmt.Errorf("nginx serves %q (%v), active is %s", c, err, st.Active.Color)
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("did not converge within %s: %v", timeout, last)
}

// activeKilled kills the serving chat container: the agent (or the restart
// policy it set) must bring service back. Failed requests in between are
// reported: with one color serving they are unavoidable.
func activeKilled(ctx context.Context, f *FaultEnv) FaultResult {
	res := FaultResult{Name: "active chat container killed"}
	st, err := f.agent().Status(ctx)
	if err != nil || st.Active == nil {
		res.Detail = fmt.Sprintf("status: %v", err)
		return res
	}
	var took time.Duration
	var cerr error
	rep, err := f.measure(ctx, res.Name, func(*Report, *httpload.Windows) {
		if _, err := stack.Docker(ctx, "kill", st.Active.Container); err != nil {
			cerr = err
			return
		}
		time.Sleep(500 * time.Millisecond)
		took, cerr = f.converge(ctx, 90*time.Second)
	})
	res.Report = rep
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	res.Pass = cerr == nil
	res.Detail = fmt.Sprintf("service back %.1fs after the kill; %d of %d requests failed meanwhile", took.Seconds()+0.5, rep.HTTP.Failed, rep.HTTP.Total)
	if cerr != nil {
		res.Detail += " — " + cerr.Error()
	}
	return res
}

// reboot stops everything (agent, chat containers, nginx) as a host reboot
// would, then starts nginx and the agent again: the agent must restore the
// same release.
func reboot(ctx context.Context, f *FaultEnv) FaultResult {
	res := FaultResult{Name: "host reboot"}
	before, err := f.snap(ctx)
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	a := f.agent()
	if err := a.Stop(); err != nil {
		res.Detail = err.Error()
		return res
	}
	names := append(a.Containers(), f.S.Nginx.Name)
	stack.Docker(ctx, append([]string{"stop", "-t", "5"}, names...)...)
	start := time.Now()
	if _, err := stack.Docker(ctx, "start", f.S.Nginx.Name); err != nil {
		res.Detail = err.Error()
		return res
	}
	if err := a.Start(ctx); err != nil {
		res.Detail = err.Error()
		return res
	}
	took, err := f.converge(ctx, 90*time.Second)
	res.Detail = fmt.Sprintf("service back %.1fs after nginx and the agent started (%.1fs converging)", time.Since(start).Seconds(), took.Seconds())
	if err != nil {
		res.Detail += " — " + err.Error()
		return res
	}
	if uerr := f.unchanged(ctx, before); uerr != nil {
		// After a reboot the agent may restart the same release on either
		// color; what matters is the image.
		after, _ := f.snap(ctx)
		if after.image != before.image {
			res.Detail += " — " + uerr.Error()
			return res
		}
	}
	res.Pass = true
	return res
}

// KillAt is the SIGKILL fault for one deploy step: the agent, started with
// its crash hook armed, kills itself as the step starts (after journaling it),
// restarts under the same config, and must converge. A crash before nginx
// was switched undoes the deploy (the old release serves, the waiting deploy
// exits 1); from verify on, the new color already serves and is healthy, so
// the deploy is finished (the new release serves, exit 0). Users notice
// nothing either way: no failed request, no message lost or doubled.
func KillAt(step string, short bool) Fault {
	name := "agent SIGKILLed during " + step
	return Fault{Name: name, Short: short, Run: func(ctx context.Context, f *FaultEnv) FaultResult {
		res := FaultResult{Name: name}
		a := f.agent()
		before, err := f.snap(ctx)
		if err != nil {
			res.Detail = err.Error()
			return res
		}
		img := f.other(ctx)
		want := before.image
		wantExit := 1
		if killForward[step] {
			want, wantExit = img, 0
		}
		var dr stack.DeployResult
		var took time.Duration
		var problems []string
		rep, err := f.measure(ctx, name, func(rep *Report, _ *httpload.Windows) {
			if err := a.Stop(); err != nil {
				problems = append(problems, err.Error())
				return
			}
			if err := a.StartCrashingAt(ctx, step); err != nil {
				problems = append(problems, err.Error())
				return
			}
			// The waiting deploy command outlives the agent (it tolerates a
			// restart) and reports how the restarted agent ended the deploy.
			done := make(chan stack.DeployResult, 1)
			go func() { done <- a.Deploy(ctx, img) }()
			if err := a.WaitExit(60 * time.Second); err == nil {
				problems = append(problems, "the agent exited cleanly instead of crashing at "+step)
			} else if !strings.Contains(err.Error(), "killed") {
				problems = append(problems, "the agent did not crash at "+step+": "+err.Error())
			}
			if _, at, err := a.ProgressStep(); err != nil || at != step {
				problems = append(problems, fmt.Sprintf("journal after the crash: step %q (%v), want %q", at, err, step))
			}
			if err := a.Start(ctx); err != nil {
				problems = append(problems, err.Error())
				<-done
				return
			}
			dr = <-done
			rep.Deploys = append(rep.Deploys, dr)
			var cerr error
			if took, cerr = f.converge(ctx, 90*time.Second); cerr != nil {
				problems = append(problems, cerr.Error())
			}
		})
		res.Report = rep
		if err != nil {
			res.Detail = err.Error()
			return res
		}
		if dr.Exit != wantExit {
			problems = append(problems, fmt.Sprintf("waiting deploy exited %d, want %d: %s", dr.Exit, wantExit, lastLine(dr.Output)))
		}
		if st, err := a.Status(ctx); err != nil || st.Active == nil || !sameImage(ctx, st.Active.Image, st.Active.Digest, want) {
			problems = append(problems, fmt.Sprintf("serving %+v (%v), want %s", st.Active, err, want))
		}
		if err := zeroDowntime(rep); err != nil {
			problems = append(problems, err.Error())
		}
		res.Pass = len(problems) == 0
		res.Detail = fmt.Sprintf("waiting deploy exit %d; converged %.1fs after restart; %d of %d requests failed", dr.Exit, took.Seconds(), rep.HTTP.Failed, rep.HTTP.Total)
		if rep.WS != nil {
			res.Detail += fmt.Sprintf("; ws lost %d doubled %d", rep.WS.Lost+rep.WS.Unacked, rep.WS.Doubled)
		}
		if !res.Pass {
			res.Detail += " — " + strings.Join(problems, "; ")
		}
		return res
	}}
}

// killForward are the steps at which nginx already serves the new color: a
// crash there finishes the deploy instead of undoing it.
var killForward = map[string]bool{"verify": true, "drain": true, "record": true}

// KillSteps are the deploy steps the SIGKILL fault targets, in the agent's
// order (agent/internal/deploy.Steps); the short form kills at the two
// steps where both colors are alive, one on each side of the switch.
var (
	KillSteps      = []string{"validate", "pull", "prepare", "start", "health", "switch", "verify", "drain", "record"}
	ShortKillSteps = []string{"health", "drain"}
)

// RunFaults prepares a fresh agent scenario and runs the faults (only the
// short ones when short), each under the load l, logging as it goes.
// only, when not empty, keeps the faults whose name contains one of its entries.
func RunFaults(ctx context.Context, env *Env, l Load, short bool, only []string, engineRestart string, log func(string, ...any)) ([]FaultResult, error) {
	s, err := env.AgentScenario(ctx, "fa")
	if err != nil {
		return nil, err
	}
	defer s.Close()
	f := &FaultEnv{Env: env, S: s, Load: l, Log: log, EngineRestart: engineRestart}
	faults := Faults()
	steps := KillSteps
	if short {
		steps = ShortKillSteps
	}
	for _, st := range steps {
		faults = append(faults, KillAt(st, true))
	}
	var out []FaultResult
	for _, fl := range faults {
		if short && !fl.Short || !selected(fl.Name, only) {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		start := time.Now()
		r := fl.Run(ctx, f)
		log("fault", "name", r.Name, "pass", r.Pass, "skipped", r.Skipped, "detail", r.Detail, "seconds", time.Since(start).Seconds())
		out = append(out, r)
		// Every fault starts from a serving, settled agent.
		if _, err := f.converge(ctx, 90*time.Second); err != nil {
			return out, fmt.Errorf("after %q the agent did not settle: %w\n%s", r.Name, err, s.Agent.LogTail(40))
		}
	}
	return out, nil
}

// FaultTable renders the fault results as Markdown.
func FaultTable(rs []FaultResult) string {
	var b strings.Builder
	b.WriteString("| fault | result | failed HTTP requests | what happened |\n|---|---|---|---|\n")
	for _, r := range rs {
		verdict := "pass"
		switch {
		case r.Skipped != "":
			verdict = "not run"
		case !r.Pass:
			verdict = "**FAIL**"
		}
		failed := "–"
		if r.Report != nil {
			failed = fmt.Sprintf("%d of %d", r.Report.HTTP.Failed, r.Report.HTTP.Total)
		}
		detail := r.Detail
		if r.Skipped != "" {
			detail = r.Skipped
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Name, verdict, failed, strings.ReplaceAll(detail, "|", "/"))
	}
	return b.String()
}

// engineRestart restarts the Docker engine while the agent serves: the
// containers it set to restart come back, and the agent must reconnect to
// the engine and make nginx serve a healthy color again.
func engineRestart(ctx context.Context, f *FaultEnv) FaultResult {
	res := FaultResult{Name: "docker engine restart"}
	if f.EngineRestart == "" {
		res.Skipped = "needs -engine-restart CMD: the engine of a shared machine is not the harness's to restart"
		res.Pass = true
		return res
	}
	var took time.Duration
	var cerr error
	rep, err := f.measure(ctx, res.Name, func(*Report, *httpload.Windows) {
		r := stack.Shell(ctx, nil, f.EngineRestart)
		if r.Exit != 0 {
			cerr = fmt.Errorf("%s: exit %d: %s", f.EngineRestart, r.Exit, lastLine(r.Output))
			return
		}
		// nginx runs without a restart policy here (the host's init keeps
		// it up in production); start it as that would.
		_, _ = stack.Docker(ctx, "start", f.S.Nginx.Name)
		took, cerr = f.converge(ctx, 120*time.Second)
	})
	res.Report = rep
	if err != nil {
		res.Detail = err.Error()
		return res
	}
	res.Pass = cerr == nil && f.agent().Running()
	res.Detail = fmt.Sprintf("service back %.1fs after the engine answered; %d of %d requests failed meanwhile", took.Seconds(), rep.HTTP.Failed, rep.HTTP.Total)
	if cerr != nil {
		res.Detail += " — " + cerr.Error()
	}
	if !f.agent().Running() {
		res.Detail += " — the agent exited: " + f.agent().LogTail(10)
	}
	return res
}

func selected(name string, only []string) bool {
	filtered := false
	for _, o := range only {
		if o == "" {
			continue
		}
		filtered = true
		if strings.Contains(name, o) {
			return true
		}
	}
	return !filtered
}
