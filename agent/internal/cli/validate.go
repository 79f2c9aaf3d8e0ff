package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/daemon"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
	"github.com/mywebchat/mywebchat/agent/internal/nginx"
)

// runValidate checks everything a deploy will need without changing anything.
func runValidate(ctx context.Context, env Env, args []string) int {
	fs, configPath := newFlags(env, "validate")
	if err := parse(fs, env, args); err != nil {
		return exitcode.BadInput
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "FAIL config:", err)
		return exitcode.BadInput
	}
	fmt.Fprintln(env.Stdout, "ok   config", *configPath)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	failed := false
	check := func(name string, err error) {
		if err != nil {
			failed = true
			fmt.Fprintf(env.Stdout, "FAIL %s: %v\n", name, err)
			return
		}
		fmt.Fprintln(env.Stdout, "ok  ", name)
	}
	log := newLogger(env)
	render := daemon.Renderer(&cfg, log)
	placeholder, err := render(nginx.Site{App: cfg.App.Name})
	check("render upstream placeholder", err)
	_, err = render(nginx.Site{App: cfg.App.Name, Color: "blue", Release: "validate", Servers: []string{fmt.Sprintf("127.0.0.1:%d", cfg.Port("blue"))}})
	check("render upstream for a release", err)

	dc, err := docker.New()
	if err != nil {
		check("docker client", err)
		return exitcode.BadInput
	}
	defer dc.Close()
	v, err := dc.Ping(ctx)
	check("docker engine (API "+v+")", err)
	if n := cfg.App.Network; n != "" && err == nil {
		switch nw, err := dc.InspectNetwork(ctx, n); {
		case errors.Is(err, docker.ErrNotFound):
			fmt.Fprintf(env.Stdout, "warn app.network %s does not exist yet; the first deploy creates it\n", n)
		case err == nil && nw.Driver != "bridge":
			check("app.network "+n, fmt.Errorf("driver %s: the colors publish on 127.0.0.1 and need a bridge network", nw.Driver))
		default:
			check("app.network "+n, err)
		}
	}
	if cfg.Proxy.Mode == "container" && err == nil {
		c, err := dc.InspectContainer(ctx, cfg.Proxy.Container)
		if err == nil && !c.Running {
			err = fmt.Errorf("nginx container %s is %s", cfg.Proxy.Container, c.State)
		}
		check("nginx container "+cfg.Proxy.Container, err)
	}
	// The whole nginx config as it is installed now (it includes proxy.output; on a fresh host,
	// before `run` wrote that file, the placeholder stands in for it during the test).
	check("nginx config test", daemon.NewProxy(&cfg, dc, log).TestInstalled(ctx, placeholder))
	for _, k := range cfg.LoopbackEnv() {
		fmt.Fprintf(env.Stdout, "warn app.env.%s names a loopback address: inside the chat container that is the container itself; put Redis and the colors on one network instead: app.network: mywebchat and redis://mywebchat-redis:6379/0 (deploy/install.sh does)\n", k)
	}
	if cfg.App.EnvFile != "" {
		if _, err := os.Stat(cfg.App.EnvFile); err != nil {
			fmt.Fprintf(env.Stdout, "warn app.env_file %s: %v (deploys go ahead without it)\n", cfg.App.EnvFile, err)
		} else {
			fmt.Fprintln(env.Stdout, "ok   app.env_file", cfg.App.EnvFile)
		}
	}
	if cfg.Registry.AuthFile != "" {
		if _, err := os.Stat(cfg.Registry.AuthFile); err != nil {
			fmt.Fprintf(env.Stdout, "warn registry.auth_file: %v (pulls are anonymous)\n", err)
		} else {
			_, err := docker.RegistryAuth(cfg.Registry.AuthFile, "validate.invalid")
			check("registry.auth_file readable", err)
		}
	}
	if failed {
		return exitcode.BadInput
	}
	return exitcode.OK
}
