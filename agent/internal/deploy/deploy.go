// Package deploy is the blue/green algorithm: the nine steps of a deploy, rollback, reconcile
// after a crash or a dead container, status and pruning. It declares the small interfaces it needs
// from the engine and takes everything else (rendering, probing, hooks) as fields, so every step
// and failure branch can be tested with tiny fakes, and with the real engine alike.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/nginx"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// Step names, in order. Each is journaled (progress.json and an event) before it starts.
const (
	StepValidate = "validate"
	StepPull     = "pull"
	StepPrepare  = "prepare"
	StepStart    = "start"
	StepHealth   = "health"
	StepSwitch   = "switch"
	StepVerify   = "verify"
	StepDrain    = "drain"
	StepRecord   = "record"
)

// Steps lists the step names in order.
var Steps = []string{StepValidate, StepPull, StepPrepare, StepStart, StepHealth, StepSwitch, StepVerify, StepDrain, StepRecord}

// Container labels (DESIGN.md).
const (
	LabelApp     = "mywebchat.app"
	LabelColor   = "mywebchat.color"
	LabelRelease = "mywebchat.release"
	LabelImage   = "mywebchat.image"
)

// Request kinds.
const (
	KindDeploy   = "deploy"
	KindRollback = "rollback"
)

// logTailLines is how many container log lines a failed health gate quotes.
const logTailLines = 30

// handoverTarget is where the handover folder appears inside every color's container.
const handoverTarget = "/handover"

type images interface {
	InspectImage(ctx context.Context, ref string) (docker.Image, error)
	PullImage(ctx context.Context, ref, auth string) error
}

type runner interface {
	CreateContainer(ctx context.Context, s docker.Spec) (string, error)
	StartContainer(ctx context.Context, id string) error
	RemoveContainer(ctx context.Context, id string) error
}

type inspector interface {
	InspectContainer(ctx context.Context, name string) (docker.Container, error)
	ListContainers(ctx context.Context, labels map[string]string) ([]docker.Container, error)
	Logs(ctx context.Context, id string, lines int) (string, error)
}

type stopper interface {
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
}

type pruner interface {
	ListImages(ctx context.Context, repository string) ([]docker.Image, error)
	RemoveImage(ctx context.Context, id string) error
}

// Engine is the part of the Docker engine the deployer uses; *docker.Client implements it.
type Engine interface {
	images
	runner
	inspector
	stopper
	pruner
}

// Request is one deploy or rollback to run.
type Request struct {
	ID    string
	Kind  string
	Image string
}

// Outcome is how a request ended. Exit is the CLI exit code: 0 deployed, 1 failed (old release
// still serving), 2 bad input (nothing changed).
type Outcome struct {
	ID      string
	Result  string // state.Succeeded, state.Failed, state.RolledBack
	Exit    int
	Message string
	Release *state.Release
}

// Hooks report progress to whoever asked for the deploy. Nil fields are skipped.
type Hooks struct {
	// Started runs once the request is durably recorded as in progress.
	Started func()
	// Event reports a step starting ("started"), a step failing ("failed") or a note ("info").
	Event func(step, status, detail string)
	// Done receives the outcome before it is journaled, so a waiting client never misses it.
	Done func(Outcome)
}

// Deployer runs deploys for one app. Fields must be set before use; Cfg may be swapped between
// deploys (config reload) but not during one.
type Deployer struct {
	Cfg    *config.Config
	Engine Engine
	Proxy  *nginx.Controller
	// Render renders the upstream file for a site (the configured template).
	Render func(nginx.Site) ([]byte, error)
	// Probe GETs a URL; nil means HTTPProbe.
	Probe func(ctx context.Context, url string, timeout time.Duration) (int, []byte, error)
	// Auth returns the registry auth header for a registry host; nil means anonymous.
	Auth  func(registryHost string) (string, error)
	Store state.Store
	Log   *slog.Logger
	// CrashAt, when set to a step name, makes the process SIGKILL itself as that step starts
	// (after journaling it). Only the crash-recovery integration test sets it
	// (env DEPLOY_AGENT_TEST_CRASH_AT); empty means never.
	CrashAt string
}

func (d *Deployer) probe(ctx context.Context, url string, timeout time.Duration) (int, []byte, error) {
	if d.Probe != nil {
		return d.Probe(ctx, url, timeout)
	}
	return HTTPProbe(ctx, url, timeout)
}

func (d *Deployer) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// run is one deploy in flight.
type run struct {
	d      *Deployer
	ctx    context.Context
	abort  <-chan struct{}
	hooks  Hooks
	p      *state.Progress
	cfg    config.Config
	ref    imageRef
	change *nginx.Change
	newID  string // the container created by this deploy, removed on failure
}

// ErrAborted means the daemon is stopping; the deploy was undone before the switch.
var ErrAborted = errors.New("the agent is stopping")

func (r *run) event(step, status, detail string) {
	if r.hooks.Event != nil {
		r.hooks.Event(step, status, detail)
	}
}

// step closes the previous step's timing, journals name as the current step, and reports it.
func (r *run) step(name, detail string) error {
	now := time.Now().UTC()
	if n := len(r.p.Steps); n > 0 {
		r.p.Steps[n-1].MS = now.Sub(r.p.Steps[n-1].At).Milliseconds()
	}
	r.p.Steps = append(r.p.Steps, state.Step{Name: name, At: now, Detail: detail})
	r.p.Step = name
	if err := r.d.Store.SaveProgress(r.p); err != nil {
		return fmt.Errorf("journal step %s: %w", name, err)
	}
	r.event(name, "started", detail)
	r.d.log().Info("deploy step", "id", r.p.ID, "step", name, "detail", detail)
	if r.d.CrashAt == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	return nil
}

func (r *run) aborted() bool {
	select {
	case <-r.abort:
		return true
	default:
		return false
	}
}

// Deploy runs req to the end. ctx should not be cancelled by a shutdown signal: abort is, and the
// deploy then stops at the next step before the switch (undoing what it did) or finishes if the
// switch already happened, so nginx is never left half-switched.
func (d *Deployer) Deploy(ctx context.Context, abort <-chan struct{}, req Request, hooks Hooks) Outcome {
	st, err := d.Store.Load()
	r := &run{d: d, ctx: ctx, abort: abort, hooks: hooks, cfg: *d.Cfg}
	r.p = &state.Progress{Record: state.Record{ID: req.ID, Kind: req.Kind, Image: req.Image, Started: time.Now().UTC(), Steps: []state.Step{}}, Before: st}
	if err != nil {
		return r.finish(state.Failed, 1, fmt.Errorf("read state: %w", err))
	}
	if err := r.step(StepValidate, req.Image); err != nil {
		return r.finish(state.Failed, 1, err)
	}
	if hooks.Started != nil {
		hooks.Started()
	}
	return r.execute(req)
}

func (r *run) execute(req Request) Outcome {
	d, cfg, ctx := r.d, &r.cfg, r.ctx
	before := r.p.Before

	// 1. Validate the reference.
	var reuse *state.Release
	switch req.Kind {
	case KindDeploy:
		ref, err := parseRef(req.Image, cfg.App.Repository)
		if err != nil {
			return r.finish(state.Failed, 2, err)
		}
		r.ref = ref
	case KindRollback:
		if before.Previous == nil {
			return r.finish(state.Failed, 2, fmt.Errorf("%w: there is no previous release to roll back to", ErrBadInput))
		}
		reuse = before.Previous
		ref, err := parseRef(reuse.Image, cfg.App.Repository)
		if err != nil {
			return r.finish(state.Failed, 2, fmt.Errorf("previous release: %w", err))
		}
		r.ref = ref
		r.p.Image = reuse.Image
	default:
		return r.finish(state.Failed, 2, fmt.Errorf("%w: unknown request kind %q", ErrBadInput, req.Kind))
	}

	// 2. Pull when absent; resolve the digest; run by digest.
	if err := r.step(StepPull, r.ref.raw); err != nil {
		return r.finish(state.Failed, 1, err)
	}
	var img docker.Image
	var err error
	if reuse != nil {
		img, err = d.Engine.InspectImage(ctx, reuse.RunRef())
		if errors.Is(err, docker.ErrNotFound) {
			img, err = r.pull(reuse.RunRef())
		}
	} else {
		img, err = d.Engine.InspectImage(ctx, r.ref.raw)
		if errors.Is(err, docker.ErrNotFound) {
			if local, ok := r.localByID(); ok {
				img, err = local, nil
			} else {
				img, err = r.pull(r.ref.raw)
			}
		}
	}
	if err != nil {
		return r.finish(state.Failed, 1, err)
	}
	runRef, digest := r.ref.resolve(img.ID, img.RepoDigests)
	r.p.Digest, r.p.ImageID = digest, img.ID
	r.event(StepPull, "info", "digest "+digest)

	// 3. Idle color; remove a stale idle container.
	if r.aborted() {
		return r.finish(state.Failed, 1, ErrAborted)
	}
	active := ""
	if before.Active != nil {
		active = before.Active.Color
	}
	idle := "blue"
	if active != "" {
		idle = config.Other(active)
	}
	rel := &state.Release{
		ID: req.ID, Image: r.p.Image, Digest: digest, ImageID: img.ID, Run: runRef, Color: idle,
		Port: cfg.Port(idle), Container: cfg.ContainerName(idle),
	}
	r.p.Color = idle
	r.p.New = rel
	if err := r.step(StepPrepare, "idle color "+idle); err != nil {
		return r.finish(state.Failed, 1, err)
	}
	existing, err := d.Engine.InspectContainer(ctx, rel.Container)
	reused := false
	switch {
	case errors.Is(err, docker.ErrNotFound):
	case err != nil:
		return r.finish(state.Failed, 1, err)
	case reuse != nil && existing.Labels[LabelRelease] == reuse.ID && existing.ImageID == img.ID && existing.Labels[LabelApp] == cfg.App.Name:
		// Rollback to the stopped previous container: start it as it was (fast path).
		reused = true
		rel.ID, rel.Since = reuse.ID, time.Time{}
	default:
		if err := d.Engine.RemoveContainer(ctx, existing.ID); err != nil {
			return r.finish(state.Failed, 1, err)
		}
	}
	handover, err := r.handoverDir(img.User)
	if err != nil {
		return r.finish(state.Failed, 1, err)
	}

	// 4. Create and start the idle container.
	if r.aborted() {
		return r.finish(state.Failed, 1, ErrAborted)
	}
	if err := r.step(StepStart, rel.Container+" on 127.0.0.1:"+strconv.Itoa(rel.Port)); err != nil {
		return r.finish(state.Failed, 1, err)
	}
	if reused {
		r.newID = existing.ID
	} else {
		spec, err := r.spec(rel, r.ref.version(digest), handover)
		if err != nil {
			return r.finish(state.Failed, 1, err)
		}
		id, err := d.Engine.CreateContainer(ctx, spec)
		if err != nil {
			return r.finish(state.Failed, 1, err)
		}
		r.newID = id
	}
	if err := d.Engine.StartContainer(ctx, r.newID); err != nil {
		return r.undoStart(fmt.Errorf("start %s: %w", rel.Container, err))
	}

	// 5. Health gate.
	if err := r.step(StepHealth, fmt.Sprintf("%d consecutive 200s on %s within %s", cfg.App.Health.HealthyAfter, cfg.App.Health.Path, cfg.App.Health.StartTimeout.D())); err != nil {
		return r.undoStart(err)
	}
	if err := d.healthGate(ctx, r.abort, cfg, r.newID, rel.Port); err != nil {
		return r.undoStart(err)
	}

	// 6. Switch nginx.
	if r.aborted() {
		return r.undoStart(ErrAborted)
	}
	if err := r.step(StepSwitch, "upstream → 127.0.0.1:"+strconv.Itoa(rel.Port)); err != nil {
		return r.undoStart(err)
	}
	content, err := d.Render(siteFor(cfg, rel))
	if err != nil {
		return r.undoStart(fmt.Errorf("render upstream: %w", err))
	}
	r.change, err = d.Proxy.Apply(ctx, content)
	if err != nil {
		return r.undoStart(fmt.Errorf("switch nginx (nginx left as it was): %w", err))
	}

	// 7. Verify through nginx.
	if err := r.step(StepVerify, cfg.Proxy.CheckURL+" must answer color "+idle); err != nil {
		return r.undoSwitch(err)
	}
	if err := d.verify(ctx, cfg, idle); err != nil {
		return r.undoSwitch(err)
	}

	// 8. Drain the old color; keep its container for an instant rollback.
	if err := r.step(StepDrain, drainDetail(before.Active, cfg)); err != nil {
		return r.finish(state.Failed, 1, err)
	}
	if before.Active != nil && before.Active.Container != rel.Container {
		if err := d.Engine.StopContainer(ctx, before.Active.Container, cfg.App.DrainTimeout.D()); err != nil && !errors.Is(err, docker.ErrNotFound) {
			d.log().Warn("stop old color", "container", before.Active.Container, "err", err)
			r.event(StepDrain, "info", "stopping the old color: "+err.Error())
		}
	}

	// 9. Record, prune.
	if err := r.step(StepRecord, "state.json, journal, prune beyond "+strconv.Itoa(cfg.App.KeepReleases)); err != nil {
		return r.finish(state.Failed, 1, err)
	}
	rel.Since = time.Now().UTC()
	next := state.State{Active: rel, Previous: before.Active}
	if err := d.Store.Save(next); err != nil {
		return r.finish(state.Failed, 1, fmt.Errorf("record release (nginx already serves %s): %w", idle, err))
	}
	r.p.New = rel
	if removed, err := d.Prune(ctx, next); err != nil {
		d.log().Warn("prune images", "err", err)
		r.event(StepRecord, "info", "prune: "+err.Error())
	} else if len(removed) > 0 {
		r.event(StepRecord, "info", "pruned "+strings.Join(removed, ", "))
	}
	return r.finishRelease(rel)
}

func drainDetail(old *state.Release, cfg *config.Config) string {
	if old == nil {
		return "no old color"
	}
	return fmt.Sprintf("SIGTERM %s, up to %s", old.Container, cfg.App.DrainTimeout.D())
}

// localByID finds a locally built image named as repo@<image ID>. Such images have no registry
// digest, so status and history report their image ID as the digest; deploying that digest must
// find the image again instead of asking a registry. Only an image tagged in app.repository
// qualifies, so the reference still names this repository's image.
func (r *run) localByID() (docker.Image, bool) {
	if r.ref.tag != "" || r.ref.digest == "" {
		return docker.Image{}, false
	}
	img, err := r.d.Engine.InspectImage(r.ctx, r.ref.digest)
	if err != nil || img.ID != r.ref.digest {
		return docker.Image{}, false
	}
	if !r.ref.tagsInRepository(img.RepoTags) {
		return docker.Image{}, false
	}
	return img, true
}

func (r *run) pull(ref string) (docker.Image, error) {
	r.event(StepPull, "info", "pulling "+ref)
	auth := ""
	if r.d.Auth != nil {
		a, err := r.d.Auth(r.ref.domain)
		if err != nil {
			return docker.Image{}, err
		}
		auth = a
	}
	if err := r.d.Engine.PullImage(r.ctx, ref, auth); err != nil {
		return docker.Image{}, err
	}
	return r.d.Engine.InspectImage(r.ctx, ref)
}

// undoStart removes the container this deploy started; nothing was switched.
func (r *run) undoStart(cause error) Outcome {
	if r.newID != "" {
		if err := r.d.Engine.RemoveContainer(context.WithoutCancel(r.ctx), r.newID); err != nil {
			r.d.log().Error("remove failed container", "id", r.newID, "err", err)
		}
	}
	return r.finish(state.Failed, 1, fmt.Errorf("%w; nothing was switched, the old release still serves", cause))
}

// undoSwitch restores the previous upstream, waits until nginx answers from the
// old color again, then stops the new color gracefully and removes it. Removing
// it at once would fail the requests that nginx workers of the undone config
// still have in flight to it.
func (r *run) undoSwitch(cause error) Outcome {
	ctx := context.WithoutCancel(r.ctx)
	if err := r.change.Restore(ctx); err != nil {
		r.d.log().Error("restore upstream", "err", err)
		cause = fmt.Errorf("%w; restoring the previous upstream failed too: %w", cause, err)
	} else if old := r.p.Before.Active; old != nil {
		if err := r.d.verify(ctx, &r.cfg, old.Color); err != nil {
			r.d.log().Warn("old color after restoring the upstream", "err", err)
		}
	}
	if r.newID != "" {
		if err := r.d.Engine.StopContainer(ctx, r.newID, r.cfg.App.DrainTimeout.D()); err != nil && !errors.Is(err, docker.ErrNotFound) {
			r.d.log().Warn("stop new color", "id", r.newID, "err", err)
		}
		if err := r.d.Engine.RemoveContainer(ctx, r.newID); err != nil {
			r.d.log().Error("remove new color", "id", r.newID, "err", err)
		}
	}
	return r.finish(state.RolledBack, 1, fmt.Errorf("%w; rolled back, the old release still serves", cause))
}

func (r *run) finishRelease(rel *state.Release) Outcome {
	o := r.finish(state.Succeeded, 0, nil)
	o.Release = rel
	return o
}

// finish journals the outcome and clears progress.json.
func (r *run) finish(result string, exit int, cause error) Outcome {
	now := time.Now().UTC()
	if n := len(r.p.Steps); n > 0 && r.p.Steps[n-1].MS == 0 {
		r.p.Steps[n-1].MS = now.Sub(r.p.Steps[n-1].At).Milliseconds()
	}
	r.p.Result, r.p.Finished = result, now
	o := Outcome{ID: r.p.ID, Result: result, Exit: exit}
	if cause != nil {
		r.p.Reason = cause.Error()
		o.Message = cause.Error()
		r.event(r.p.Step, "failed", cause.Error())
	} else {
		o.Message = fmt.Sprintf("%s is live in %s", r.p.Image, r.p.Color)
		r.p.Reason = o.Message
	}
	if r.hooks.Done != nil {
		r.hooks.Done(o)
	}
	r.d.log().Info("deploy finished", "id", r.p.ID, "result", result, "reason", r.p.Reason)
	if err := r.d.Store.Append(r.p.Record); err != nil {
		r.d.log().Error("journal", "err", err)
	}
	if err := r.d.Store.ClearProgress(); err != nil {
		r.d.log().Error("clear progress", "err", err)
	}
	return o
}

func siteFor(cfg *config.Config, rel *state.Release) nginx.Site {
	if rel == nil {
		return nginx.Site{App: cfg.App.Name}
	}
	return nginx.Site{App: cfg.App.Name, Color: rel.Color, Release: rel.ID, Servers: []string{"127.0.0.1:" + strconv.Itoa(rel.Port)}}
}

// handoverDir creates <state_dir>/handover/<app> (0700) owned by the image's numeric user.
func (r *run) handoverDir(user string) (string, error) {
	dir := filepath.Join(r.cfg.StateDir, "handover", r.cfg.App.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("handover folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("handover folder: %w", err)
	}
	if uid, gid, ok := numericUser(user); ok {
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", fmt.Errorf("handover folder: %w", err)
		}
	} else if user != "" {
		r.d.log().Warn("image user is not numeric; handover folder stays root-owned", "user", user)
	}
	return dir, nil
}

func numericUser(user string) (int, int, bool) {
	if user == "" {
		return 0, 0, false
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return 0, 0, false
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0, false
		}
	}
	return uid, gid, true
}

// maxEnvFileBytes bounds app.env_file.
const maxEnvFileBytes = 64 << 10

func (r *run) spec(rel *state.Release, version, handover string) (docker.Spec, error) {
	cfg := &r.cfg
	env := map[string]string{}
	if cfg.App.EnvFile != "" {
		fileEnv, err := readEnvFile(cfg.App.EnvFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The key is optional in spirit: a host without the file deploys with app.env only.
			r.d.log().Warn("app.env_file does not exist; deploying without it", "path", cfg.App.EnvFile)
			r.event(StepStart, "info", "app.env_file "+cfg.App.EnvFile+" does not exist; not used")
		case err != nil:
			return docker.Spec{}, err
		}
		for k, v := range fileEnv {
			env[k] = v
		}
	}
	for k, v := range cfg.App.Env {
		env[k] = v
	}
	env["APP_COLOR"] = rel.Color
	env["APP_VERSION"] = version
	env["CHAT_HANDOVER_DIR"] = handoverTarget
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	list := make([]string, 0, len(keys))
	for _, k := range keys {
		list = append(list, k+"="+env[k])
	}
	return docker.Spec{
		Name:  rel.Container,
		Image: rel.Run,
		Labels: map[string]string{
			LabelApp: cfg.App.Name, LabelColor: rel.Color, LabelRelease: rel.ID, LabelImage: rel.Image,
		},
		Env:           list,
		HostPort:      rel.Port,
		ContainerPort: cfg.App.ContainerPort,
		MemoryBytes:   cfg.App.MemoryBytes,
		Binds:         map[string]string{handover: handoverTarget},
		StopTimeout:   cfg.App.DrainTimeout.D(),
		Network:       cfg.App.Network,
	}, nil
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("app.env_file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, maxEnvFileBytes+1)
	n, _ := io.ReadFull(f, buf)
	if n > maxEnvFileBytes {
		return nil, fmt.Errorf("app.env_file %s: larger than %d bytes", path, maxEnvFileBytes)
	}
	env := map[string]string{}
	for i, line := range strings.Split(string(buf[:n]), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			// Quote only the line number: values may be secrets.
			return nil, fmt.Errorf("app.env_file %s: line %d is not KEY=VALUE", path, i+1)
		}
		env[k] = v
	}
	return env, nil
}
