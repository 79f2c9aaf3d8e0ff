package zdt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/stack"
)

// Env is what every scenario of one run shares: the checkout, the images,
// the agent binary, a temp folder, and a unique name prefix.
type Env struct {
	Root   string
	Prefix string // e.g. e2e-1a2b3c; every container name starts with it
	Dir    string
	Images stack.Images
	Agent  string // deploy-agent binary; empty when not built

	containers []string
}

// Setup builds what the scenarios need. withAgent builds the agent binary
// too (the baselines work without it).
func Setup(ctx context.Context, withAgent bool) (*Env, error) {
	root, err := stack.RepoRoot()
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff)
	dir, err := os.MkdirTemp("", "e2e-zdt-")
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	repo := "mywebchat/e2e-app"
	e := &Env{
		Root: root, Prefix: "e2e-" + id, Dir: dir,
		// Tags are unique per run, so concurrent runs on one engine never
		// retag each other's images; Close removes them.
		Images: stack.Images{
			Repository: repo, A: repo + ":" + id + "-a", B: repo + ":" + id + "-b",
			NeverHealthy: repo + ":" + id + "-never-healthy", Crash: repo + ":" + id + "-crash",
			WrongColor: repo + ":" + id + "-wrong-color", ForeignImage: "mywebchat/e2e-foreign:" + id,
			Nginx: "mywebchat/e2e-nginx:" + id, GoImage: envOr("GO_IMAGE", "mywebchat/go-builder:local"),
			NginxBaseName: envOr("NGINX_IMAGE", "mywebchat/debian-base:local"),
		},
	}
	if err := stack.BuildImages(ctx, root, e.Images, true); err != nil {
		return nil, err
	}
	if withAgent {
		if e.Agent, err = stack.BuildAgent(ctx, root, dir); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Close removes every container this run created and the temp folder.
func (e *Env) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	names, _ := stack.ContainersWithPrefix(ctx, e.Prefix+"-")
	stack.RemoveContainers(append(names, e.containers...)...)
	im := e.Images
	// Untag only; layers shared with other images stay.
	_, _ = stack.Docker(ctx, "rmi", im.A, im.B, im.NeverHealthy, im.Crash, im.WrongColor, im.ForeignImage, im.Nginx)
	os.RemoveAll(e.Dir)
}

// Scenario is a deployer behind its own nginx, with the first image deployed.
type Scenario struct {
	Name     string
	Nginx    *stack.Nginx
	Deployer stack.Deployer
	Agent    *stack.Agent // nil for the baselines
}

// Close stops the scenario's agent and removes its containers.
func (s *Scenario) Close() {
	if s.Agent != nil {
		_ = s.Agent.Stop()
	}
	stack.RemoveContainers(s.Deployer.Containers()...)
	s.Nginx.Stop()
}

// URL is nginx's base address.
func (s *Scenario) URL() string { return s.Nginx.URL() }

func (e *Env) nginx(ctx context.Context, short string) (*stack.Nginx, error) {
	port, err := stack.FreePort()
	if err != nil {
		return nil, err
	}
	n := &stack.Nginx{Name: e.Prefix + "-" + short + "-nginx", Image: e.Images.Nginx, Port: port,
		UpstreamDir: filepath.Join(e.Dir, short, "nginx")}
	e.containers = append(e.containers, n.Name)
	return n, n.Start(ctx)
}

// StopAndRun prepares the naive baseline with image A serving.
func (e *Env) StopAndRun(ctx context.Context) (*Scenario, error) {
	n, err := e.nginx(ctx, "sr")
	if err != nil {
		return nil, err
	}
	port, err := stack.FreePort()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(n.UpstreamFile(), fmt.Appendf(nil, "upstream chat {\n    server 127.0.0.1:%d;\n}\n", port), 0o644); err != nil {
		return nil, fmt.Errorf("stop-and-run upstream: %w", err)
	}
	if _, err := stack.Docker(ctx, "kill", "-s", "HUP", n.Name); err != nil {
		return nil, err
	}
	d := &stack.StopAndRun{Script: stack.BaselineScript(e.Root, "stop-and-run.sh"), Container: e.Prefix + "-sr-app", Port: port}
	return e.first(ctx, &Scenario{Name: d.Name(), Nginx: n, Deployer: d})
}

// BlueGreen prepares the shell-script blue/green baseline with image A serving.
func (e *Env) BlueGreen(ctx context.Context) (*Scenario, error) {
	n, err := e.nginx(ctx, "bg")
	if err != nil {
		return nil, err
	}
	ports, err := stack.FreePorts(2)
	if err != nil {
		return nil, err
	}
	d := &stack.BlueGreen{Script: stack.BaselineScript(e.Root, "bluegreen.sh"), Prefix: e.Prefix + "-bg",
		BluePort: ports[0], GreenPort: ports[1], StateDir: filepath.Join(e.Dir, "bg", "state"),
		Upstream: n.UpstreamFile(), Reload: n.ReloadCommand()}
	return e.first(ctx, &Scenario{Name: d.Name(), Nginx: n, Deployer: d})
}

// AgentScenario prepares the deploy agent, running as a daemon, with image
// A deployed through it.
func (e *Env) AgentScenario(ctx context.Context, short string) (*Scenario, error) {
	if e.Agent == "" {
		return nil, fmt.Errorf("agent scenario: the agent binary was not built")
	}
	n, err := e.nginx(ctx, short)
	if err != nil {
		return nil, err
	}
	ports, err := stack.FreePorts(2)
	if err != nil {
		return nil, err
	}
	a := &stack.Agent{Bin: e.Agent, Dir: filepath.Join(e.Dir, short, "agent"), App: e.Prefix + "-" + short,
		Repository: e.Images.Repository, BluePort: ports[0], GreenPort: ports[1], Nginx: n}
	if err := a.WriteConfig(); err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		return nil, err
	}
	return e.first(ctx, &Scenario{Name: a.Name(), Nginx: n, Deployer: a, Agent: a})
}

// first deploys image A and checks it serves through nginx.
func (e *Env) first(ctx context.Context, s *Scenario) (*Scenario, error) {
	e.containers = append(e.containers, s.Deployer.Containers()...)
	r := s.Deployer.Deploy(ctx, e.Images.A)
	if r.Exit != 0 {
		s.Close()
		return nil, fmt.Errorf("%s: first deploy exit %d: %s", s.Name, r.Exit, r.Output)
	}
	if err := stack.WaitHTTP(ctx, s.URL()+"/healthz", 30*time.Second); err != nil {
		s.Close()
		return nil, fmt.Errorf("%s: after the first deploy: %w", s.Name, err)
	}
	return s, nil
}
