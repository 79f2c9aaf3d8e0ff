// Package deploy is the blue/green algorithm: the nine steps of a deploy, rollback, reconcile
// after a crash or a dead container, status and pruning. It declares the small interfaces it needs
// from the engine and takes everything else (rendering, probing, hooks) as fields, so every step
// and failure branch can be tested with tiny fakes, and with the real engine alike.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
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

// Container labels (docs/architecture.md, step 4).
const (
	LabelApp     = "mywebchat.app"
	LabelColor   = "mywebchat.color"
	LabelRelease = "mywebchat.release"
	LabelImage   = "mywebchat.image"
)

// logTailLines is how many container log lines a failed health gate quotes.
const logTailLines = 30

// imageSource finds and pulls the image to deploy (step 2).
type imageSource interface {
	InspectImage(ctx context.Context, ref string) (docker.Image, error)
	PullImage(ctx context.Context, ref, auth string) error
}

// containerRunner creates and starts a color's container (step 4) and removes a stale (step 3)
// or failed one.
type containerRunner interface {
	CreateContainer(ctx context.Context, s docker.Spec) (string, error)
	StartContainer(ctx context.Context, id string) error
	RemoveContainer(ctx context.Context, id string) error
}

// containerStopper stops the old color gracefully (step 8).
type containerStopper interface {
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
}

// engine is what a Deployer uses of the Docker engine: the parts its steps, status
// (containerInspector), health gate (logReader), reconcile (containerLister), pruning
// (imageRemover) and the colors' folders (folderGiver) each declare. *docker.Client implements it; so do the tests' fakes. A status
// report alone needs only containerInspector (StatusReader).
type engine interface {
	imageSource
	containerInspector
	containerRunner
	containerStopper
	logReader
	containerLister
	imageRemover
	folderGiver
}

// Request is one deploy or rollback to run.
type Request struct {
	ID    string
	Kind  string
	Image string
}

// Outcome is how a request ended. Exit is the CLI exit code: exitcode.OK, exitcode.Failed (the
// old release still serves) or exitcode.BadInput (nothing changed).
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
	Engine engine
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
	// HoldFile, when set, makes a deploy wait as a step starts (after journaling it) for as long
	// as that file exists and holds the step's name, so a test can act while a deploy is known
	// to be at a given step. Only integration tests set it (env DEPLOY_AGENT_TEST_HOLD_FILE);
	// empty means never.
	HoldFile string
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

// run is one deploy in flight. Each step fills in what the later ones need.
type run struct {
	d     *Deployer
	ctx   context.Context
	abort <-chan struct{}
	hooks Hooks
	p     *state.Progress
	cfg   config.Config

	ref      imageRef       // validate: the requested image
	reuse    *state.Release // validate: the release a rollback returns to; nil for a deploy
	img      docker.Image   // pull: the local image
	runRef   string         // pull: what the container runs (repo@digest or the image ID)
	rel      *state.Release // prepare: the release being deployed, in the idle color
	reusedID string         // prepare: a rollback's stopped container, started again as it was
	handover string         // prepare: the handover folder on the host
	newID    string         // start: the container this deploy started, removed on failure
	change   *nginx.Change  // start: the staged upstream; switch: how to restore the previous one
	stageErr error          // start: why the upstream could not be staged
	staged   chan struct{}  // start: closed once staging ended; nil when it never started
	answered time.Time      // verify: when the new color first answered through nginx
}

// ErrAborted means the daemon is stopping; the deploy was undone before the switch.
var ErrAborted = errors.New("the agent is stopping")

// Event statuses of Hooks.Event.
const (
	EventStarted = "started"
	EventFailed  = "failed"
	EventInfo    = "info"
)

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
	r.event(name, EventStarted, detail)
	r.d.log().Info("deploy step", "id", r.p.ID, "step", name, "detail", detail)
	if r.d.CrashAt == name {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	r.hold(name)
	return nil
}

// holdPoll is how often a held deploy looks at the hold file again.
const holdPoll = 20 * time.Millisecond

// hold waits while the test hold file names step; stopping the agent ends the wait.
func (r *run) hold(step string) {
	if r.d.HoldFile == "" {
		return
	}
	for {
		b, err := os.ReadFile(r.d.HoldFile)
		if err != nil || strings.TrimSpace(string(b)) != step {
			return
		}
		select {
		case <-r.abort:
			return
		case <-r.ctx.Done():
			return
		case <-time.After(holdPoll):
		}
	}
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
		return r.fail(fmt.Errorf("read state: %w", err))
	}
	if err := r.step(StepValidate, req.Image); err != nil {
		return r.fail(err)
	}
	if hooks.Started != nil {
		hooks.Started()
	}
	return r.execute(req)
}

// execute runs the steps after validate was journaled, one call per step. A step that fails
// before the switch undoes the new container; once nginx was switched, a failed verify switches
// back; after that the new release serves and a failure only affects the record.
func (r *run) execute(req Request) Outcome {
	if err := r.validate(req); err != nil {
		return r.fail(err)
	}
	if err := r.pullImage(); err != nil {
		return r.fail(err)
	}
	if err := r.prepare(req.ID); err != nil {
		return r.fail(err)
	}
	if err := r.start(); err != nil {
		return r.undoStart(err)
	}
	if err := r.health(); err != nil {
		return r.undoStart(err)
	}
	if err := r.switchProxy(); err != nil {
		return r.undoStart(err)
	}
	if err := r.verifySwitch(); err != nil {
		return r.undoSwitch(err)
	}
	if err := r.drain(); err != nil {
		return r.fail(err)
	}
	if err := r.record(); err != nil {
		return r.fail(err)
	}
	return r.finishRelease(r.rel)
}

// validate is step 1: the reference must name an image in app.repository; a rollback takes the
// previous release's pinned image.
func (r *run) validate(req Request) error {
	switch req.Kind {
	case state.KindDeploy:
		ref, err := parseRef(req.Image, r.cfg.App.Repository)
		if err != nil {
			return err
		}
		r.ref = ref
	case state.KindRollback:
		prev := r.p.Before.Previous
		if prev == nil {
			return fmt.Errorf("%w: there is no previous release to roll back to", ErrBadInput)
		}
		ref, err := parseRef(prev.Image, r.cfg.App.Repository)
		if err != nil {
			return fmt.Errorf("previous release: %w", err)
		}
		r.reuse, r.ref, r.p.Image = prev, ref, prev.Image
	default:
		return fmt.Errorf("%w: unknown request kind %q", ErrBadInput, req.Kind)
	}
	return nil
}

// pullImage is step 2: pull when absent, resolve and record the digest, so the container runs
// by digest and never by a mutable tag.
func (r *run) pullImage() error {
	if err := r.step(StepPull, r.ref.raw); err != nil {
		return err
	}
	eng := r.d.Engine
	var img docker.Image
	var err error
	if r.reuse != nil {
		img, err = eng.InspectImage(r.ctx, r.reuse.RunRef())
		if errors.Is(err, docker.ErrNotFound) {
			img, err = r.pull(r.reuse.RunRef())
		}
	} else {
		img, err = eng.InspectImage(r.ctx, r.ref.raw)
		if errors.Is(err, docker.ErrNotFound) {
			if local, ok := r.localByID(); ok {
				img, err = local, nil
			} else {
				img, err = r.pull(r.ref.raw)
			}
		}
	}
	if err != nil {
		return err
	}
	r.img = img
	r.runRef, r.p.Digest = r.ref.resolve(img.ID, img.RepoDigests)
	r.p.ImageID = img.ID
	r.event(StepPull, EventInfo, "digest "+r.p.Digest)
	return nil
}

// prepare is step 3: the idle color is the one not serving; a stale container in it is removed,
// except a rollback's own stopped container, which is started again as it was.
func (r *run) prepare(id string) error {
	if r.aborted() {
		return ErrAborted
	}
	cfg := &r.cfg
	idle := "blue"
	if a := r.p.Before.Active; a != nil {
		idle = config.Other(a.Color)
	}
	r.rel = &state.Release{
		ID: id, Image: r.p.Image, Digest: r.p.Digest, ImageID: r.img.ID, Run: r.runRef, Color: idle,
		Port: cfg.Port(idle), Container: cfg.ContainerName(idle),
	}
	r.p.Color = idle
	r.p.New = r.rel
	if err := r.step(StepPrepare, "idle color "+idle); err != nil {
		return err
	}
	existing, err := r.d.Engine.InspectContainer(r.ctx, r.rel.Container)
	switch {
	case errors.Is(err, docker.ErrNotFound):
	case err != nil:
		return err
	case r.reuse != nil && existing.Labels[LabelRelease] == r.reuse.ID && existing.ImageID == r.img.ID && existing.Labels[LabelApp] == cfg.App.Name:
		// Rollback to the stopped previous container: start it as it was (fast path).
		r.reusedID = existing.ID
		r.rel.ID, r.rel.Since = r.reuse.ID, time.Time{}
	default:
		if err := r.d.Engine.RemoveContainer(r.ctx, existing.ID); err != nil {
			return err
		}
	}
	r.handover, err = r.d.prepareFolders(r.ctx, cfg, r.img)
	return err
}

// start is step 4: create (unless reused) and start the idle color's container.
func (r *run) start() error {
	if r.aborted() {
		return ErrAborted
	}
	rel := r.rel
	if err := r.step(StepStart, rel.Container+" on "+backend(&r.cfg, rel.Color, rel.Port)); err != nil {
		return err
	}
	r.stageSwitch()
	if r.reusedID != "" {
		r.newID = r.reusedID
	} else {
		spec, err := r.spec(rel, r.ref.version(rel.Digest), r.handover)
		if err != nil {
			return err
		}
		id, err := r.d.Engine.CreateContainer(r.ctx, spec)
		if err != nil {
			return err
		}
		r.newID = id
	}
	if err := r.d.Engine.StartContainer(r.ctx, r.newID); err != nil {
		return fmt.Errorf("start %s: %w", rel.Container, err)
	}
	return nil
}

// health is step 5: healthy_after consecutive 200s within start_timeout.
func (r *run) health() error {
	h := r.cfg.App.Health
	if err := r.step(StepHealth, fmt.Sprintf("%d consecutive 200s on %s within %s", h.HealthyAfter, h.Path, h.StartTimeout.D())); err != nil {
		return err
	}
	return r.d.healthGate(r.ctx, r.abort, &r.cfg, r.newID, r.rel)
}

// stageSwitch renders the upstream for the new color, puts it in place and tests the whole nginx
// config in the background while the container starts and the health gate runs, without telling
// nginx: nginx reads its files only when told, so until the switch it serves what it served. In
// container mode the test is an exec in the nginx container, which would otherwise be most of
// the switch's time.
func (r *run) stageSwitch() {
	r.staged = make(chan struct{})
	go func() {
		defer close(r.staged)
		content, err := r.d.Render(siteFor(&r.cfg, r.rel))
		if err != nil {
			r.stageErr = fmt.Errorf("render upstream: %w", err)
			return
		}
		r.change, r.stageErr = r.d.Proxy.Stage(r.ctx, content)
	}()
}

// unstage waits for staging to end and puts the previous upstream back: the deploy stops before
// the switch, and nginx never saw the staged file.
func (r *run) unstage() {
	if r.staged == nil {
		return
	}
	<-r.staged
	if r.change == nil {
		return
	}
	if err := r.change.Discard(); err != nil {
		r.d.log().Error("put back the upstream", "err", err)
	}
	r.change = nil
}

// switchProxy is step 6: tell nginx about the upstream staged since the start (rendered
// for the new color, the whole config tested, the previous file kept) by reloading it. A failure
// leaves nginx as it was.
func (r *run) switchProxy() error {
	if r.aborted() {
		return ErrAborted
	}
	if err := r.step(StepSwitch, "upstream → "+backend(&r.cfg, r.rel.Color, r.rel.Port)); err != nil {
		return err
	}
	<-r.staged
	if r.stageErr != nil {
		return fmt.Errorf("switch nginx (nginx left as it was): %w", r.stageErr)
	}
	if err := r.change.Commit(r.ctx); err != nil {
		r.change = nil // Commit restored the previous file and told nginx
		return fmt.Errorf("switch nginx (nginx left as it was): %w", err)
	}
	return nil
}

// verifySwitch is step 7: check_url must answer from the new color.
func (r *run) verifySwitch() error {
	if err := r.step(StepVerify, r.cfg.Proxy.CheckURL+" must answer color "+r.rel.Color); err != nil {
		return err
	}
	var err error
	r.answered, err = r.d.verify(r.ctx, &r.cfg, r.rel.Color)
	return err
}

// drain is step 8: stop the old color gracefully (its container stays for an instant rollback)
// and end once no new request can reach the configuration before the switch.
//
// The stop starts at once: the old color moves its live connections and exits meanwhile. For
// nginx's reload handover (reloadHandover) its old workers may still take new connections. A
// request that one sends to the old color as it drains (503) or once it is gone (connection
// refused) is answered by the new color when the previous upstream lists it as backup, as the
// shipped template does: nginx then asks the backup (proxy_next_upstream, on errors by default).
// Without that backup (the first release's placeholder, a template without backups), or when the
// old color could not be stopped, the drain also lasts until the handover is over (waitHandover
// waits for a moment in time, so the stop's time counts toward it). A failure to stop the old
// color is reported, not fatal: the new release already serves.
func (r *run) drain() error {
	old := r.p.Before.Active
	if err := r.step(StepDrain, drainDetail(old, &r.cfg)); err != nil {
		return err
	}
	if old == nil || old.Container == r.rel.Container {
		waitHandover(r.ctx, r.answered)
		return nil
	}
	err := r.d.Engine.StopContainer(r.ctx, old.Container, r.cfg.App.DrainTimeout.D())
	failed := err != nil && !errors.Is(err, docker.ErrNotFound)
	if failed {
		r.d.log().Warn("stop old color", "container", old.Container, "err", err)
		r.event(StepDrain, EventInfo, "stopping the old color: "+err.Error())
	}
	if failed || !r.backedByNew() {
		waitHandover(r.ctx, r.answered)
	}
	return nil
}

// backedByNew reports whether the upstream before the switch lists the new color as a backup, so
// that nginx's old workers send a request the old color cannot take to the new color.
func (r *run) backedByNew() bool {
	if r.change == nil {
		return false
	}
	return slices.Contains(nginx.BackupServers(r.change.Previous()), backend(&r.cfg, r.rel.Color, r.rel.Port))
}

// record is step 9: state.json names the new release, then images beyond keep_releases go.
func (r *run) record() error {
	if err := r.step(StepRecord, "state.json, journal, prune beyond "+strconv.Itoa(r.cfg.App.KeepReleases)); err != nil {
		return err
	}
	rel := r.rel
	rel.Since = time.Now().UTC()
	next := state.State{Active: rel, Previous: r.p.Before.Active}
	if err := r.d.Store.Save(next); err != nil {
		return fmt.Errorf("record release (nginx already serves %s): %w", rel.Color, err)
	}
	r.p.New = rel
	if removed, err := r.d.Prune(r.ctx, next); err != nil {
		r.d.log().Warn("prune images", "err", err)
		r.event(StepRecord, EventInfo, "prune: "+err.Error())
	} else if len(removed) > 0 {
		r.event(StepRecord, EventInfo, "pruned "+strings.Join(removed, ", "))
	}
	return nil
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
	r.event(StepPull, EventInfo, "pulling "+ref)
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
	r.unstage()
	if r.newID != "" {
		if err := r.d.Engine.RemoveContainer(context.WithoutCancel(r.ctx), r.newID); err != nil {
			r.d.log().Error("remove failed container", "id", r.newID, "err", err)
		}
	}
	return r.finish(state.Failed, exitcode.Failed, fmt.Errorf("%w; nothing was switched, the old release still serves", cause))
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
		if err := r.d.verifySettled(ctx, &r.cfg, old.Color); err != nil {
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
	return r.finish(state.RolledBack, exitcode.Failed, fmt.Errorf("%w; rolled back, the old release still serves", cause))
}

// fail ends a deploy that changed nothing users see: exit 2 for bad input, 1 otherwise.
func (r *run) fail(cause error) Outcome {
	exit := exitcode.Failed
	if errors.Is(cause, ErrBadInput) {
		exit = exitcode.BadInput
	}
	return r.finish(state.Failed, exit, cause)
}

func (r *run) finishRelease(rel *state.Release) Outcome {
	o := r.finish(state.Succeeded, exitcode.OK, nil)
	o.Release = rel
	return o
}

// finish journals the outcome and clears progress.json. exit is an exitcode constant.
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
		r.event(r.p.Step, EventFailed, cause.Error())
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
	// The other color is the backup: after a switch, nginx workers still on the previous upstream
	// may send a request to the old color while it drains (503); nginx then asks the new one.
	other := config.Other(rel.Color)
	return nginx.Site{App: cfg.App.Name, Color: rel.Color, Release: rel.ID,
		Servers: []string{backend(cfg, rel.Color, rel.Port)}, Backups: []string{backend(cfg, other, cfg.Port(other))}}
}

// backend is where nginx reaches a color: its unix socket, or its port on the loopback when the
// data path is TCP (app.socket_dir).
func backend(cfg *config.Config, color string, port int) string {
	if sock := cfg.SocketPath(color); sock != "" {
		return "unix:" + sock
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// healthURL is what health checks probe for rel: through its socket when there is one, so the
// gate checks the path nginx will use (see HTTPProbe for the unix: form).
func healthURL(cfg *config.Config, rel *state.Release) string {
	if sock := cfg.SocketPath(rel.Color); sock != "" {
		return "unix:" + sock + ":" + cfg.App.Health.Path
	}
	return "http://127.0.0.1:" + strconv.Itoa(rel.Port) + cfg.App.Health.Path
}
