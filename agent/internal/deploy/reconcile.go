package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/atomicfile"
	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// StepReconcile is the step a half-done deploy gets when a restarted agent finishes or undoes it.
const StepReconcile = "reconcile"

// Reconcile makes the host match the truth: a deploy left half-done by a crash is finished (the
// new color is served and answers through nginx) or undone (otherwise); then the active color is
// restarted if it died (or recreated if it vanished), nginx is pointed at a healthy color, stray
// colors are stopped, and the upstream file exists (a placeholder before the first release).
// done receives the outcome of a recovered deploy.
func (d *Deployer) Reconcile(ctx context.Context, done func(Outcome)) error {
	p, err := d.Store.LoadProgress()
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if p != nil {
		d.recover(ctx, p, done)
	}
	return d.converge(ctx)
}

// nginxTold reports whether a deploy that stopped during step may have reloaded nginx with the
// new color's upstream: from the switch on. Before it the upstream file may already name the new
// color (staged from the start step on), but nginx never read it. A step this version does not
// know counts as told, so the new color is checked through nginx as before.
func nginxTold(step string) bool {
	i := slices.Index(Steps, step)
	return i < 0 || i >= slices.Index(Steps, StepSwitch)
}

// containerLister finds the app's containers in any color (stray colors, pruning).
type containerLister interface {
	ListContainers(ctx context.Context, labels map[string]string) ([]docker.Container, error)
}

// servedColor is the color the upstream file points at, or "".
func (d *Deployer) servedColor() string {
	cur, err := d.Proxy.Current()
	if err != nil {
		return ""
	}
	return servedColor(d.Cfg, cur)
}

func (d *Deployer) recover(ctx context.Context, p *state.Progress, done func(Outcome)) {
	cfg := *d.Cfg
	r := &run{d: d, ctx: ctx, hooks: Hooks{Done: done}, p: p, cfg: cfg}
	crashedAt := p.Step
	served := d.servedColor()
	d.log().Warn("half-done deploy found", "id", p.ID, "step", crashedAt, "served", served)
	if err := r.step(StepReconcile, "the agent stopped during step "+crashedAt); err != nil {
		d.log().Error("journal reconcile step", "err", err)
	}
	before := p.Before
	if n := p.New; n != nil && nginxTold(crashedAt) && served == n.Color {
		c, err := d.Engine.InspectContainer(ctx, n.Container)
		if err == nil && c.Running && c.Labels[LabelRelease] == n.ID && d.verifySettled(ctx, &cfg, n.Color) == nil {
			if before.Active != nil && before.Active.Container != n.Container {
				if err := d.Engine.StopContainer(ctx, before.Active.Container, cfg.App.DrainTimeout.D()); err != nil && !errors.Is(err, docker.ErrNotFound) {
					d.log().Warn("stop old color", "err", err)
				}
			}
			n.Since = time.Now().UTC()
			if err := d.Store.Save(state.State{Active: n, Previous: before.Active}); err != nil {
				r.finish(state.Failed, exitcode.Failed, fmt.Errorf("record release after restart: %w", err))
				return
			}
			r.p.Color = n.Color
			r.finishRelease(n)
			return
		}
	}
	// Undo: the old release serves again; the new color goes away.
	if before.Active != nil {
		if err := d.ensureRunning(ctx, &cfg, before.Active); err != nil {
			d.log().Error("restart old color", "err", err)
		}
	}
	if err := d.ensureUpstream(ctx, before.Active); err != nil {
		d.log().Error("point nginx back", "err", err)
	}
	if n := p.New; n != nil && (before.Active == nil || n.Container != before.Active.Container) {
		if c, err := d.Engine.InspectContainer(ctx, n.Container); err == nil {
			if c.Labels[LabelRelease] == p.ID {
				err = d.Engine.RemoveContainer(ctx, c.ID)
			} else {
				err = d.Engine.StopContainer(ctx, c.ID, 0) // a rollback's reused container: keep it
			}
			if err != nil {
				d.log().Error("remove new color", "err", err)
			}
		}
	}
	result := state.Failed
	if crashedAt == StepSwitch || crashedAt == StepVerify || crashedAt == StepDrain || crashedAt == StepRecord {
		result = state.RolledBack
	}
	r.finish(result, exitcode.Failed, fmt.Errorf("the agent stopped during step %s; the deploy was undone, the old release still serves", crashedAt))
}

// converge is the periodic part of reconcile.
func (d *Deployer) converge(ctx context.Context) error {
	cfg := *d.Cfg
	st, err := d.Store.Load()
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if st.Active == nil {
		if rel := d.adopt(ctx, &cfg); rel != nil {
			d.log().Warn("adopting the served container as the active release", "container", rel.Container)
			st.Active = rel
			if err := d.Store.Save(st); err != nil {
				return fmt.Errorf("reconcile: %w", err)
			}
		}
	}
	if st.Active == nil {
		return d.ensureUpstream(ctx, nil)
	}
	if err := d.ensureRunning(ctx, &cfg, st.Active); err == nil {
		if err := d.ensureUpstream(ctx, st.Active); err != nil {
			return err
		}
		d.stopStrays(ctx, &cfg, st.Active.Color)
		return nil
	} else {
		d.log().Error("active color unhealthy", "container", st.Active.Container, "err", err)
	}
	if st.Previous != nil && st.Previous.Color != st.Active.Color {
		if err := d.ensureRunning(ctx, &cfg, st.Previous); err == nil {
			if err := d.ensureUpstream(ctx, st.Previous); err != nil {
				return err
			}
			failed := st.Active
			st.Active, st.Previous = st.Previous, failed
			if err := d.Store.Save(st); err != nil {
				return fmt.Errorf("reconcile: %w", err)
			}
			now := time.Now().UTC()
			_ = d.Store.Append(state.Record{
				ID: "reconcile-" + now.Format("20060102T150405Z"), Kind: state.KindReconcile, Image: st.Active.Image, Digest: st.Active.Digest,
				ImageID: st.Active.ImageID, Color: st.Active.Color, Result: state.Succeeded, Started: now, Finished: now,
				Reason: fmt.Sprintf("active %s (%s) was unhealthy; switched back to %s", failed.Container, failed.Image, st.Active.Container),
				Steps:  []state.Step{{Name: StepReconcile, At: now}},
			})
			d.stopStrays(ctx, &cfg, st.Active.Color)
			return nil
		}
	}
	// Nothing healthier to offer: keep nginx on the active color (it may come back).
	return d.ensureUpstream(ctx, st.Active)
}

// ensureRunning starts (or recreates) rel's container when needed and checks its health.
func (d *Deployer) ensureRunning(ctx context.Context, cfg *config.Config, rel *state.Release) error {
	c, err := d.Engine.InspectContainer(ctx, rel.Container)
	switch {
	case errors.Is(err, docker.ErrNotFound):
		d.log().Warn("container missing; recreating it", "container", rel.Container)
		id, err := d.recreate(ctx, cfg, rel)
		if err != nil {
			return err
		}
		return d.healthGate(ctx, nil, cfg, id, rel)
	case err != nil:
		return err
	case !c.Running:
		d.log().Warn("container not running; starting it", "container", rel.Container, "state", c.State)
		if err := d.Engine.StartContainer(ctx, c.ID); err != nil {
			return err
		}
		return d.healthGate(ctx, nil, cfg, c.ID, rel)
	}
	if !d.probeHealthy(ctx, cfg, rel) {
		return fmt.Errorf("%s does not answer 200 on %s", rel.Container, cfg.App.Health.Path)
	}
	return nil
}

func (d *Deployer) recreate(ctx context.Context, cfg *config.Config, rel *state.Release) (string, error) {
	r := &run{d: d, ctx: ctx, cfg: *cfg}
	img, err := d.Engine.InspectImage(ctx, rel.RunRef())
	if err != nil {
		return "", fmt.Errorf("recreate %s: %w", rel.Container, err)
	}
	handover, err := d.prepareFolders(ctx, cfg, img)
	if err != nil {
		return "", err
	}
	version := shortDigest(rel.Digest)
	if ref, err := parseRef(rel.Image, cfg.App.Repository); err == nil {
		version = ref.version(rel.Digest)
	}
	spec, err := r.spec(rel, version, handover)
	if err != nil {
		return "", err
	}
	id, err := d.Engine.CreateContainer(ctx, spec)
	if err != nil {
		return "", err
	}
	if err := d.Engine.StartContainer(ctx, id); err != nil {
		return "", err
	}
	return id, nil
}

// adopt rebuilds the active release from the served container's labels when state.json is lost.
func (d *Deployer) adopt(ctx context.Context, cfg *config.Config) *state.Release {
	color := d.servedColor()
	if color == "" {
		return nil
	}
	c, err := d.Engine.InspectContainer(ctx, cfg.ContainerName(color))
	if err != nil || !c.Running || c.Labels[LabelApp] != cfg.App.Name || c.Labels[LabelColor] != color {
		return nil
	}
	return &state.Release{
		ID: c.Labels[LabelRelease], Image: c.Labels[LabelImage], Digest: c.ImageID, ImageID: c.ImageID, Run: c.ImageID,
		Color: color, Port: cfg.Port(color), Container: c.Name, Since: c.StartedAt,
	}
}

// stopStrays stops running containers of this app in any color but keep (left by a crash).
func (d *Deployer) stopStrays(ctx context.Context, cfg *config.Config, keep string) {
	cs, err := d.Engine.ListContainers(ctx, map[string]string{LabelApp: cfg.App.Name})
	if err != nil {
		d.log().Error("list containers", "err", err)
		return
	}
	for _, c := range cs {
		color := c.Labels[LabelColor]
		if c.Running && color != keep && (color == "blue" || color == "green") {
			d.log().Warn("stopping a color that is not served", "container", c.Name)
			if err := d.Engine.StopContainer(ctx, c.ID, cfg.App.DrainTimeout.D()); err != nil {
				d.log().Error("stop stray color", "err", err)
			}
		}
	}
}

// ensureUpstream renders rel (nil: the placeholder) and applies it when the bytes differ. A
// missing file is written without a test or reload first, so that nginx can start at all.
func (d *Deployer) ensureUpstream(ctx context.Context, rel *state.Release) error {
	content, err := d.Render(siteFor(d.Cfg, rel))
	if err != nil {
		return fmt.Errorf("render upstream: %w", err)
	}
	cur, err := d.Proxy.Current()
	if err != nil {
		return err
	}
	if cur == nil {
		if err := os.MkdirAll(filepath.Dir(d.Proxy.Output), 0o755); err != nil {
			return fmt.Errorf("upstream folder: %w", err)
		}
		if err := atomicfile.WriteFile(d.Proxy.Output, content, 0o644); err != nil {
			return err
		}
		if err := d.Proxy.Reload(ctx); err != nil {
			d.log().Info("nginx not reloaded after writing the first upstream file (it may not run yet)", "err", err)
		}
		return nil
	}
	if _, err := d.Proxy.Apply(ctx, content); err != nil {
		return fmt.Errorf("update upstream: %w", err)
	}
	return nil
}
