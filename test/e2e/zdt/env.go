package zdt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	// HealthyAfter is the agents' app.health.healthy_after; 0 keeps 2, as deploy/agent.yaml
	// ships. 1 is kamal-proxy's gate: one passing check.
	HealthyAfter int

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
	stack.RemoveNetworksWithPrefix(ctx, e.Prefix+"-")
	im := e.Images
	// Untag only; layers shared with other images stay.
	_, _ = stack.Docker(ctx, "rmi", im.A, im.B, im.NeverHealthy, im.Crash, im.WrongColor, im.ForeignImage, im.Nginx)
	os.RemoveAll(e.Dir)
}

// Scenario is a deployer behind its own nginx, with the first image deployed.
type Scenario struct {
	Name     string
	Nginx    *stack.Nginx // the nginx users reach
	Deployer stack.Deployer
	Agent    *stack.Agent   // the agent the faults drive; nil for the baselines
	Agents   []*stack.Agent // every agent of the scenario: one, or one per host of a fleet
	Redis    *stack.Redis   // the fleet's shared Redis; nil elsewhere

	url     string   // where users go, when not Nginx's own address
	cleanup []func() // run last, newest first
}

// Close stops the scenario's agents and removes its containers.
func (s *Scenario) Close() {
	for _, a := range s.Agents {
		_ = a.Stop()
	}
	if s.Deployer != nil {
		stack.RemoveContainers(s.Deployer.Containers()...)
	}
	if s.Nginx != nil {
		s.Nginx.Stop()
	}
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
}

// URL is the base address users reach.
func (s *Scenario) URL() string {
	if s.url != "" {
		return s.url
	}
	return s.Nginx.URL()
}

// nginx starts a scenario's nginx, after tune (may be nil) prepared it.
func (e *Env) nginx(ctx context.Context, short string, tune func(*stack.Nginx) error) (*stack.Nginx, error) {
	port, err := stack.FreePort()
	if err != nil {
		return nil, err
	}
	n := &stack.Nginx{Name: e.Prefix + "-" + short + "-nginx", Image: e.Images.Nginx, Port: port,
		UpstreamDir: filepath.Join(e.Dir, short, "nginx")}
	e.containers = append(e.containers, n.Name)
	if tune != nil {
		if err := tune(n); err != nil {
			return nil, fmt.Errorf("nginx %s: %w", short, err)
		}
	}
	return n, n.Start(ctx)
}

// StopAndRun prepares the naive baseline with image A serving.
func (e *Env) StopAndRun(ctx context.Context) (*Scenario, error) {
	n, err := e.nginx(ctx, "sr", nil)
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
	n, err := e.nginx(ctx, "bg", nil)
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
	a, err := e.agent(ctx, short, "", nil)
	if err != nil {
		return nil, err
	}
	return e.first(ctx, &Scenario{Name: a.Name(), Nginx: a.Nginx, Deployer: a, Agent: a, Agents: []*stack.Agent{a}})
}

// FleetScenario prepares two hosts in Redis mode behind a load balancer, as
// docs/fleet.md lays them out: each host is an agent with its own nginx and
// blue/green colors; a front nginx spreads users over both hosts' nginx (an
// ALB's part, see loadBalancerConf); the colors of both hosts join one Docker network with a Redis
// container (CHAT_REDIS_URL) and share every room through it. A deploy is a
// rollout, host after host, stopping at the first failure. Image A ends up
// deployed on both.
func (e *Env) FleetScenario(ctx context.Context, short string) (*Scenario, error) {
	s := &Scenario{}
	fail := func(err error) (*Scenario, error) {
		s.Close()
		return nil, err
	}
	redis := &stack.Redis{Name: e.Prefix + "-" + short + "-redis", Network: e.Prefix + "-" + short + "-net",
		Image: envOr("REDIS_IMAGE", "mywebchat/redis:local")}
	e.containers = append(e.containers, redis.Name)
	s.Redis, s.cleanup = redis, append(s.cleanup, redis.Stop)
	if err := redis.Start(ctx); err != nil {
		return fail(err)
	}
	var upstream strings.Builder
	upstream.WriteString("# The load balancer: both hosts' nginx.\nupstream chat {\n")
	for _, h := range []string{"a", "b"} {
		// Each host's nginx as install.sh sets it up behind a load balancer.
		behindLB := filepath.Join(e.Root, "nginx-templates", "listen-behind-lb.conf")
		a, err := e.agent(ctx, short+h, behindLB, func(a *stack.Agent) {
			a.Network, a.Env = redis.Network, map[string]string{"CHAT_REDIS_URL": redis.URL()}
		})
		if a != nil {
			s.Agents = append(s.Agents, a)
			s.cleanup = append(s.cleanup, a.Nginx.Stop)
		}
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(&upstream, "    server 127.0.0.1:%d max_fails=0;\n", a.Nginx.Port)
	}
	upstream.WriteString("    keepalive 32;\n}\n")
	front, err := e.nginx(ctx, short+"-front", func(n *stack.Nginx) error {
		if err := os.MkdirAll(n.UpstreamDir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(n.UpstreamFile(), []byte(upstream.String()), 0o644)
	})
	s.Nginx = front
	if err != nil {
		return fail(err)
	}
	if s.url, err = loadBalancer(ctx, front); err != nil {
		return fail(err)
	}
	rollout := &stack.Rollout{Agents: s.Agents}
	s.Name, s.Deployer, s.Agent = rollout.Name(), rollout, s.Agents[0]
	return e.first(ctx, s)
}

// loadBalancerConf is the part an ALB plays, added to the front nginx as an
// operator server block: every request goes to one host's nginx over kept
// -alive connections with X-Forwarded-For, WebSocket upgrades pass through,
// and a failed request is not retried on the other host (an ALB does not
// retry either), so a host's failure reaches the load generator.
const loadBalancerConf = `map $http_upgrade $lb_connection {
    default upgrade;
    ''      '';
}
server {
    listen 127.0.0.1:%d;
    location / {
        proxy_pass http://chat;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $lb_connection;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_next_upstream off;
        proxy_buffering off;
        proxy_read_timeout 120s;
        proxy_send_timeout 120s;
    }
}
`

// loadBalancer adds the load balancer's server block to the front nginx,
// reloads it and returns the address users reach.
func loadBalancer(ctx context.Context, front *stack.Nginx) (string, error) {
	port, err := stack.FreePort()
	if err != nil {
		return "", err
	}
	conf := filepath.Join(front.HostDir(), "load-balancer.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, loadBalancerConf, port), 0o644); err != nil {
		return "", fmt.Errorf("load balancer: %w", err)
	}
	if _, err := stack.Docker(ctx, "kill", "-s", "HUP", front.Name); err != nil {
		return "", fmt.Errorf("load balancer: %w", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	// Before the first deploy the hosts answer 502; any answer means it listens.
	return url, stack.WaitReady(ctx, "load balancer on "+url, front.Name, 20*time.Second, func(ctx context.Context) error {
		_, _, err := stack.Get(ctx, url+"/")
		return err
	})
}

// agent starts an nginx (with the listen settings of listenFrom, if set) and
// a deploy agent daemon in front of it, with config changes made by tune (may
// be nil) before the config is written. On error it returns what it started,
// for the caller to clean up.
func (e *Env) agent(ctx context.Context, short, listenFrom string, tune func(*stack.Agent)) (*stack.Agent, error) {
	if e.Agent == "" {
		return nil, fmt.Errorf("agent scenario: the agent binary was not built")
	}
	n, err := e.nginx(ctx, short, func(n *stack.Nginx) error {
		n.ListenFrom = listenFrom
		// The agent's data path: <state_dir>/sockets (stack.Agent.StateDir).
		n.SocketDir = filepath.Join(e.Dir, short, "agent", "state", "sockets")
		return nil
	})
	if err != nil {
		return nil, err
	}
	ports, err := stack.FreePorts(2)
	if err != nil {
		n.Stop()
		return nil, err
	}
	a := &stack.Agent{Bin: e.Agent, Dir: filepath.Join(e.Dir, short, "agent"), App: e.Prefix + "-" + short,
		Repository: e.Images.Repository, BluePort: ports[0], GreenPort: ports[1], Nginx: n, HealthyAfter: e.HealthyAfter}
	e.containers = append(e.containers, a.Containers()...)
	if tune != nil {
		tune(a)
	}
	if err := a.WriteConfig(); err != nil {
		return a, err
	}
	return a, a.Start(ctx)
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

// Kamal prepares the kamal baseline with image A serving: kamal-proxy,
// built from its source (bin), run as a process in front of two colors of
// the same app image on published 127.0.0.1 ports, deployed the way Kamal
// does it (test/e2e/baselines/kamal.sh). healthInterval is kamal-proxy's
// health-check interval (0: Kamal's default, 1 s).
func (e *Env) Kamal(ctx context.Context, bin string, healthInterval time.Duration) (*Scenario, error) {
	if err := stack.CheckBinary(bin); err != nil {
		return nil, fmt.Errorf("kamal scenario: %w", err)
	}
	ports, err := stack.FreePorts(4)
	if err != nil {
		return nil, err
	}
	p := &stack.KamalProxy{Bin: bin, Dir: filepath.Join(e.Dir, "kp"), Port: ports[0], HTTPSPort: ports[1]}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	d := &stack.Kamal{Script: stack.BaselineScript(e.Root, "kamal.sh"), Proxy: p, Service: "chat",
		Prefix: e.Prefix + "-kp", BluePort: ports[2], GreenPort: ports[3], StateDir: filepath.Join(e.Dir, "kp", "state"),
		StaticDir: filepath.Join(e.Root, "static"), HealthInterval: healthInterval}
	return e.first(ctx, &Scenario{Name: d.Name(), Deployer: d, url: p.URL(), cleanup: []func(){p.Stop}})
}
