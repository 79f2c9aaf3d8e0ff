// Package daemon is `deploy-agent run`: it holds the agent lock, reconciles at start,
// periodically and right after an app container dies (engine events), serves the request queue
// one deploy at a time (fsnotify plus a periodic rescan), reloads config and template live, and
// talks to systemd (READY, WATCHDOG, STOPPING).
package daemon

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/deploy"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/nginx"
	"github.com/mywebchat/mywebchat/agent/internal/state"
	nginxtemplates "github.com/mywebchat/mywebchat/nginx-templates"
)

// NewProxy returns the nginx controller for cfg's proxy mode.
func NewProxy(cfg *config.Config, dc *docker.Client, log *slog.Logger) *nginx.Controller {
	c := &nginx.Controller{Output: cfg.Proxy.Output, Log: log}
	if cfg.Proxy.Mode == "host" {
		c.Test = nginx.HostCommand(cfg.Proxy.TestCommand)
		c.Reload = nginx.HostCommand(cfg.Proxy.ReloadCommand)
	} else {
		c.Test = nginx.ContainerTest(dc, cfg.Proxy.Container)
		c.Reload = nginx.ContainerReload(dc, cfg.Proxy.Container)
	}
	return c
}

// Renderer renders with the configured template file, read at every call so edits apply, or
// with the built-in template when none is configured or the file is not installed.
func Renderer(cfg *config.Config, log *slog.Logger) func(nginx.Site) ([]byte, error) {
	path := cfg.Proxy.Template
	var warned atomic.Bool // say it once per config, not at every reconcile
	return func(s nginx.Site) ([]byte, error) {
		if path == "" {
			return nginx.Render(nginxtemplates.FS, nginxtemplates.Upstream, s)
		}
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if !warned.Swap(true) {
				log.Warn("template file missing; using the built-in template", "path", path)
			}
			return nginx.Render(nginxtemplates.FS, nginxtemplates.Upstream, s)
		}
		return nginx.Render(os.DirFS(filepath.Dir(path)), filepath.Base(path), s)
	}
}

// NewDeployer wires a deployer for cfg on the real engine.
func NewDeployer(cfg *config.Config, dc *docker.Client, log *slog.Logger) *deploy.Deployer {
	d := &deploy.Deployer{
		Cfg:    cfg,
		Engine: dc,
		Proxy:  NewProxy(cfg, dc, log),
		Render: Renderer(cfg, log),
		Store:  state.Store{Dir: cfg.StateDir},
		Log:    log,
	}
	if cfg.Registry.AuthFile != "" {
		authFile := cfg.Registry.AuthFile
		d.Auth = func(host string) (string, error) { return docker.RegistryAuth(authFile, host) }
	}
	return d
}

// NewStatusReader wires a status report for cfg on the real engine.
func NewStatusReader(cfg *config.Config, dc *docker.Client) *deploy.StatusReader {
	return &deploy.StatusReader{
		Cfg:        cfg,
		Containers: dc,
		Upstream:   (&nginx.Controller{Output: cfg.Proxy.Output}).Current,
		Store:      state.Store{Dir: cfg.StateDir},
	}
}
