package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/fsnotify/fsnotify"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/deploy"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
	"github.com/mywebchat/mywebchat/agent/internal/queue"
)

// Timing of the daemon's loops.
const (
	// rescanInterval is the safety net behind fsnotify for queued requests.
	rescanInterval = 2 * time.Second
	// reconcileInterval is how often the host is checked against the truth between deploys.
	reconcileInterval = 30 * time.Second
	// settleTime is how long a request file that does not parse may keep changing before it is rejected.
	settleTime = time.Second
	// reloadDebounce lets an editor finish writing the config or template before it is read.
	reloadDebounce = 300 * time.Millisecond
)

// Daemon is `deploy-agent run`.
type Daemon struct {
	ConfigPath string
	Log        *slog.Logger
	// CrashAt is the crash-test hook passed to the deployer (see deploy.Deployer.CrashAt).
	CrashAt string
	// HoldFile is the step-hold test hook passed to the deployer (see deploy.Deployer.HoldFile).
	HoldFile string
}

// Run serves until ctx is done. A deploy in flight when ctx ends is finished if nginx already
// switched, and undone otherwise, before Run returns nil.
func (dm *Daemon) Run(ctx context.Context) error {
	cfg, err := config.Load(dm.ConfigPath)
	if err != nil {
		return err
	}
	q := queue.Queue{StateDir: cfg.StateDir}
	if err := q.Init(); err != nil {
		return err
	}
	lock, err := q.Lock()
	if err != nil {
		return err
	}
	defer lock.Close()
	dc, err := connectEngine(ctx, dm.Log)
	if err != nil {
		return err
	}
	defer dc.Close()

	s := dm.newServer(cfg, q, dc)
	// Deploys and reconciles run to the end even when ctx ends: a deploy stops at its next step
	// instead (see Deployer.Deploy), so nginx is never left half-switched.
	work := context.WithoutCancel(ctx)
	if err := s.d.Reconcile(work, s.done); err != nil {
		s.log.Error("reconcile", "err", err)
	}
	if err := s.watchFiles(); err != nil {
		return err
	}
	defer s.watch.Close()
	notifyReady(s.log)
	defer watchdog(ctx, s.log)()
	s.logStarted()
	defer s.watchEngine(ctx)()
	return s.loop(ctx, work)
}

// connectEngine returns a client of the Docker engine. An engine that does not answer yet is
// logged, not fatal: every deploy and reconcile tries again.
func connectEngine(ctx context.Context, log *slog.Logger) (*docker.Client, error) {
	dc, err := docker.New()
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if v, err := dc.Ping(pingCtx); err != nil {
		log.Error("docker engine not reachable; will retry on every deploy and reconcile", "err", err)
	} else {
		log.Info("docker engine", "api_version", v)
	}
	return dc, nil
}

func (dm *Daemon) newServer(cfg config.Config, q queue.Queue, dc *docker.Client) *server {
	s := &server{log: dm.Log, q: q, dc: dc, cfgPath: dm.ConfigPath, cfg: cfg, renamed: make(chan string, 1)}
	s.d = NewDeployer(&s.cfg, dc, dm.Log)
	s.d.CrashAt, s.d.HoldFile = dm.CrashAt, dm.HoldFile
	return s
}

// watchFiles watches the queue folder and the folders of the config and the template.
func (s *server) watchFiles() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	if err := w.Add(s.q.QueueDir()); err != nil {
		w.Close()
		return fmt.Errorf("watch queue: %w", err)
	}
	s.watch = w
	s.watchConfig()
	return nil
}

func notifyReady(log *slog.Logger) {
	if ok, err := sddaemon.SdNotify(false, sddaemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY", "err", err)
	} else if ok {
		log.Info("told systemd we are ready")
	}
}

func (s *server) logStarted() {
	s.log.Info("deploy agent running", "config", s.cfgPath, "state_dir", s.cfg.StateDir, "proxy_mode", s.cfg.Proxy.Mode)
	if keys := s.cfg.LoopbackEnv(); len(keys) > 0 {
		// Not an error: a container-reachable service at that address is possible.
		s.log.Warn("app.env names a loopback address; inside the chat containers that is the container itself: set app.network and name the service by its container name", "keys", keys)
	}
}

// watchEngine follows the engine's events so that a dead or removed chat container is
// reconciled right away, not at the next tick. The watcher only signals s.kick; reconciles run
// in loop, between deploys, like the periodic one. The returned func stops it and waits.
func (s *server) watchEngine(ctx context.Context) func() {
	s.kick = make(chan struct{}, 1)
	ctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ew := &eventWatcher{src: s.dc, app: s.cfg.App.Name, renamed: s.renamed, log: s.log, kick: s.kick}
		ew.run(ctx)
	}()
	return func() { stop(); <-done }
}

// loop serves the queue, reloads, and reconciles until ctx is done; work outlives ctx (see Run).
func (s *server) loop(ctx, work context.Context) error {
	// SIGHUP (systemctl reload) re-reads the config and template, like an edit does.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	rescan := time.NewTicker(rescanInterval)
	defer rescan.Stop()
	reconcile := time.NewTicker(reconcileInterval)
	defer reconcile.Stop()

	s.serveQueue(work, ctx.Done())
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			_, _ = sddaemon.SdNotify(false, sddaemon.SdNotifyStopping)
			s.log.Info("deploy agent stopping")
			return nil
		case ev, ok := <-s.watch.Events:
			if !ok {
				return errors.New("watcher closed")
			}
			if filepath.Dir(ev.Name) == s.q.QueueDir() {
				s.serveQueue(work, ctx.Done())
			} else if s.isWatched(ev.Name) {
				debounce = time.After(reloadDebounce)
			}
		case err, ok := <-s.watch.Errors:
			if ok {
				s.log.Warn("watcher", "err", err)
			}
		case <-hup:
			s.log.Info("SIGHUP: reloading config and template")
			s.reload(work)
		case <-debounce:
			debounce = nil
			s.reload(work)
		case <-rescan.C:
			s.serveQueue(work, ctx.Done())
		case <-s.kick:
			s.log.Info("reconciling after a container event")
			s.reconcile(work)
		case <-reconcile.C:
			s.reconcile(work)
			if err := s.q.PruneDeploys(); err != nil {
				s.log.Warn("prune deploy folders", "err", err)
			}
		}
	}
}

func (s *server) reconcile(ctx context.Context) {
	if err := s.d.Reconcile(ctx, s.done); err != nil {
		s.log.Error("reconcile", "err", err)
	}
}

// watchdog pings systemd at half the configured watchdog interval until ctx ends.
func watchdog(ctx context.Context, log *slog.Logger) func() {
	every, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := sddaemon.SdNotify(false, sddaemon.SdNotifyWatchdog); err != nil {
					log.Warn("sd_notify WATCHDOG", "err", err)
				}
			}
		}
	}()
	return cancel
}

type server struct {
	log     *slog.Logger
	q       queue.Queue
	d       *deploy.Deployer
	dc      *docker.Client
	watch   *fsnotify.Watcher
	cfgPath string
	cfg     config.Config
	// renamed carries a new app.name to the event watcher, which subscribes again with it.
	renamed chan string
	// kick is signalled by the event watcher when an app container died or vanished.
	kick chan struct{}
}

// done writes a deploy's outcome where `deploy --wait` looks and drops its queue file.
func (s *server) done(o deploy.Outcome) {
	r := queue.Result{ID: o.ID, Result: o.Result, Exit: o.Exit, Message: o.Message, Finished: time.Now().UTC()}
	if o.Release != nil {
		r.Image, r.Digest, r.Color = o.Release.Image, o.Release.Digest, o.Release.Color
	}
	if err := s.q.WriteResult(r); err != nil {
		s.log.Error("write result", "id", o.ID, "err", err)
	}
	if err := s.q.Remove(o.ID); err != nil {
		s.log.Error("remove request", "id", o.ID, "err", err)
	}
}

// serveQueue runs every queued request, oldest first, one at a time.
func (s *server) serveQueue(ctx context.Context, abort <-chan struct{}) {
	for {
		select {
		case <-abort:
			return
		default:
		}
		ids, err := s.q.Pending()
		if err != nil {
			s.log.Error("read queue", "err", err)
			return
		}
		if len(ids) == 0 {
			return
		}
		id := ids[0]
		req, err := s.q.Read(id)
		if err != nil && s.q.Age(id) < settleTime {
			// Our CLI writes requests atomically; a file that does not parse yet may still be
			// being written by something else: look again on the next rescan.
			return
		}
		if err != nil {
			if !s.reject(id, err) {
				return
			}
			continue
		}
		s.log.Info("deploy request", "id", req.ID, "kind", req.Kind, "image", req.Image)
		s.d.Deploy(ctx, abort, deploy.Request{ID: req.ID, Kind: req.Kind, Image: req.Image}, deploy.Hooks{
			Started: func() {
				if err := s.q.Remove(req.ID); err != nil {
					s.log.Error("remove started request", "err", err)
				}
			},
			Event: func(step, status, detail string) {
				if err := s.q.AppendEvent(req.ID, queue.Event{At: time.Now().UTC(), Step: step, Status: status, Detail: detail}); err != nil {
					s.log.Error("write event", "err", err)
				}
			},
			Done: s.done,
		})
	}
}

// reject answers a request file that is not a valid request with exit 2 and removes it. It
// reports false when the file could not be removed (the queue is stuck until it can).
func (s *server) reject(id string, cause error) bool {
	s.log.Warn("rejecting request file", "file", id, "err", cause)
	if queue.ValidID(id) {
		res := queue.Result{ID: id, Result: "rejected", Exit: exitcode.BadInput, Message: cause.Error(), Finished: time.Now().UTC()}
		if err := s.q.WriteResult(res); err != nil {
			// The client then waits for a result that never comes and exits 4 at its timeout.
			s.log.Error("write result of bad request", "id", id, "err", err)
		}
	}
	if err := s.q.Remove(id); err != nil {
		s.log.Error("remove bad request", "err", err)
		return false
	}
	return true
}

func (s *server) watchConfig() {
	for _, p := range []string{s.cfgPath, s.cfg.Proxy.Template} {
		if p == "" {
			continue
		}
		if err := s.watch.Add(filepath.Dir(p)); err != nil {
			s.log.Warn("cannot watch for changes", "path", p, "err", err)
		}
	}
}

func (s *server) isWatched(name string) bool {
	name = filepath.Clean(name)
	return name == filepath.Clean(s.cfgPath) || (s.cfg.Proxy.Template != "" && name == filepath.Clean(s.cfg.Proxy.Template))
}

// reload re-reads the config (and, through reconcile, re-renders the template). An invalid
// config is logged and the running one stays; nginx is only touched through a tested Apply.
func (s *server) reload(ctx context.Context) {
	cfg, err := config.Load(s.cfgPath)
	if err != nil {
		s.log.Error("config change rejected; keeping the running config", "err", err)
		return
	}
	if cfg.StateDir != s.cfg.StateDir {
		s.log.Warn("state_dir changes need a restart; keeping the old one", "running", s.cfg.StateDir, "new", cfg.StateDir)
		cfg.StateDir = s.cfg.StateDir
	}
	old := s.cfg
	s.cfg = cfg
	nd := NewDeployer(&s.cfg, s.dc, s.log)
	nd.CrashAt, nd.HoldFile = s.d.CrashAt, s.d.HoldFile
	*s.d = *nd
	if old.Proxy.Template != cfg.Proxy.Template {
		s.watchConfig()
	}
	if old.App.Name != cfg.App.Name {
		// Only the newest name matters: replace one the watcher has not taken yet.
		select {
		case <-s.renamed:
		default:
		}
		s.renamed <- cfg.App.Name
	}
	s.log.Info("config and template reloaded", "config", s.cfgPath)
	if err := s.d.Reconcile(ctx, s.done); err != nil {
		s.log.Error("apply reloaded config/template; nginx keeps its current upstream", "err", err)
	}
}
