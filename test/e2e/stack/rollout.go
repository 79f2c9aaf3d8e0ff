package stack

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rollout deploys to several hosts' agents one at a time and stops at the
// first failure, as release.yml's SSM rollout does across a fleet. Before
// each deploy it records how many WebSocket connections every host's active
// color holds, so a run can show that users were spread over the hosts.
type Rollout struct {
	Agents []*Agent

	mu      sync.Mutex
	spreads [][]int
}

// Name implements Deployer.
func (r *Rollout) Name() string { return fmt.Sprintf("deploy-agent ×%d hosts, Redis", len(r.Agents)) }

// Containers implements Deployer.
func (r *Rollout) Containers() []string {
	var names []string
	for _, a := range r.Agents {
		names = append(names, a.Containers()...)
	}
	return names
}

// Deploy implements Deployer: host after host, as one deploy.
func (r *Rollout) Deploy(ctx context.Context, image string) DeployResult {
	out := DeployResult{Image: image, Start: time.Now()}
	spread := make([]int, len(r.Agents))
	for i, a := range r.Agents {
		spread[i], _ = a.Connections(ctx)
	}
	r.mu.Lock()
	r.spreads = append(r.spreads, spread)
	r.mu.Unlock()
	var log strings.Builder
	for i, a := range r.Agents {
		res := a.Deploy(ctx, image)
		fmt.Fprintf(&log, "host %d (%s): exit %d in %.1fs\n%s\n", i+1, a.App, res.Exit, res.Duration.Seconds(), res.Output)
		if res.Exit != 0 {
			out.Exit = res.Exit
			break
		}
	}
	out.Duration, out.Output = time.Since(out.Start), log.String()
	return out
}

// Spreads returns, per deploy so far, each host's open connections just
// before it.
func (r *Rollout) Spreads() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]int(nil), r.spreads...)
}

// Connections reads chat_connections from the active color's /metrics on
// its published port (127.0.0.1; nginx never exposes /metrics).
func (a *Agent) Connections(ctx context.Context) (int, error) {
	st, err := a.Status(ctx)
	if err != nil {
		return 0, err
	}
	if st.Active == nil {
		return 0, fmt.Errorf("%s: no active release", a.App)
	}
	code, body, err := Get(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", st.Active.Port))
	if err != nil || code != 200 {
		return 0, fmt.Errorf("%s metrics: HTTP %d %v", a.App, code, err)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "chat_connections "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("%s metrics: no chat_connections", a.App)
}
