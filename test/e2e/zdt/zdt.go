// Package zdt runs the zero-downtime comparison: one scenario puts HTTP and
// WebSocket load through nginx, runs N consecutive deploys of alternating
// images with one deployer (the agent or a baseline), and reports what users
// would have seen: failed requests, lost or doubled messages, reconnect gaps,
// latency during deploys against the steady state, and deploy durations.
package zdt

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/httpload"
	"github.com/mywebchat/mywebchat/test/e2e/stack"
	"github.com/mywebchat/mywebchat/test/e2e/wsfleet"
)

// Load is how hard a scenario pushes and for how long.
type Load struct {
	Rate    int           // HTTP requests per second through nginx
	Clients int           // WebSocket clients; 0 runs HTTP load only
	Movers  int           // how many of the clients offer caps:["move"] (protocol v1.1)
	Rooms   int           // rooms the clients spread over
	Send    time.Duration // each client's pace between messages
	Deploys int           // consecutive deploys
	Warmup  time.Duration // steady state before the first deploy
	Gap     time.Duration // steady state between and after deploys
	Tail    time.Duration // a deploy window extends this long past the command's exit
	// HealthyAfter is the agent's app.health.healthy_after; 0 keeps 2, as shipped.
	HealthyAfter int
}

// Report is one scenario's outcome.
type Report struct {
	Name    string
	Deploys []stack.DeployResult
	HTTP    httpload.Summary
	WS      *wsfleet.Report // nil without WebSocket clients
	// Steps holds the agent's per-step durations; empty for the baselines.
	Steps    []StepStat
	StepsErr string
}

// FailedDeploys counts deploys whose command did not exit 0.
func (r *Report) FailedDeploys() int {
	n := 0
	for _, d := range r.Deploys {
		if d.Exit != 0 {
			n++
		}
	}
	return n
}

// MeanDeploy is the mean wall time of a deploy command.
func (r *Report) MeanDeploy() time.Duration {
	if len(r.Deploys) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range r.Deploys {
		sum += d.Duration
	}
	return sum / time.Duration(len(r.Deploys))
}

// Run drives one scenario. baseURL is nginx's address; images alternate,
// starting with the one after images[0], which the caller has already deployed
// (the steady state before the first measured deploy).
func Run(ctx context.Context, name, baseURL string, d stack.Deployer, images []string, l Load, log func(string, ...any)) (*Report, error) {
	maxRun := l.Warmup + time.Duration(l.Deploys)*(l.Gap+3*time.Minute) + l.Gap
	return Measure(ctx, name, baseURL, l, maxRun, func(rep *Report, windows *httpload.Windows) {
		sleep(ctx, l.Warmup)
		for i := 0; i < l.Deploys && ctx.Err() == nil; i++ {
			img := images[(i+1)%len(images)]
			r := d.Deploy(ctx, img)
			windows.Add(r.Start, r.Start.Add(r.Duration+l.Tail))
			rep.Deploys = append(rep.Deploys, r)
			log("deploy", "scenario", name, "n", i+1, "image", img, "exit", r.Exit, "seconds", r.Duration.Seconds())
			if r.Exit != 0 {
				log("deploy output", "scenario", name, "output", r.Output)
			}
			sleep(ctx, l.Gap)
		}
	})
}

// RestartRedis measures the fleet scenario while its Redis restarts on its
// append-only file: users may see a delayed ack, nothing else.
func RestartRedis(ctx context.Context, s *Scenario, l Load, log func(string, ...any)) (*Report, error) {
	if s.Redis == nil {
		return nil, fmt.Errorf("%s: no Redis to restart", s.Name)
	}
	return measureOne(ctx, s, "Redis restart", l, 2*time.Minute, log, func() stack.DeployResult {
		r := stack.DeployResult{Image: "restart " + s.Redis.Name, Start: time.Now()}
		if err := s.Redis.Restart(ctx); err != nil {
			r.Exit, r.Output = 1, err.Error()
		}
		r.Duration = time.Since(r.Start)
		return r
	})
}

// measureOne measures s under l around one action that takes at most limit:
// steady state, the action (its window lasts until l.Tail past it), steady
// state again.
func measureOne(ctx context.Context, s *Scenario, what string, l Load, limit time.Duration, log func(string, ...any), act func() stack.DeployResult) (*Report, error) {
	name := s.Name + ", " + what
	return Measure(ctx, name, s.URL(), l, l.Warmup+l.Gap+limit, func(rep *Report, windows *httpload.Windows) {
		sleep(ctx, l.Warmup)
		r := act()
		windows.Add(r.Start, r.Start.Add(r.Duration+l.Tail))
		rep.Deploys = append(rep.Deploys, r)
		log(what, "scenario", name, "image", r.Image, "exit", r.Exit, "seconds", r.Duration.Seconds(), "output", r.Output)
		sleep(ctx, l.Gap)
	})
}

// FailingRollout measures a fleet rollout whose last host cannot start the
// new release (its config gets a malformed CHAT_HISTORY, which the chat
// server refuses): the rollout must stop there with that host's exit code 1,
// the earlier hosts on the new release, the failing host still on the old
// one, and users noticing nothing. The host's config is restored afterwards.
func FailingRollout(ctx context.Context, s *Scenario, images []string, l Load, log func(string, ...any)) (*Report, error) {
	if len(s.Agents) < 2 {
		return nil, fmt.Errorf("%s: a failing rollout needs two hosts", s.Name)
	}
	last := s.Agents[len(s.Agents)-1]
	st, err := last.Status(ctx)
	if err != nil || st.Active == nil {
		return nil, fmt.Errorf("%s: status before the failing rollout: %v", s.Name, err)
	}
	next := images[0]
	if sameImage(ctx, st.Active.Image, st.Active.Digest, images[0]) {
		next = images[1]
	}
	last.Env["CHAT_HISTORY"] = "not-a-number"
	if err := last.Reconfigure(ctx); err != nil {
		return nil, err
	}
	defer func() {
		delete(last.Env, "CHAT_HISTORY")
		if err := last.Reconfigure(context.Background()); err != nil {
			log("restore host config", "err", err.Error())
		}
	}()
	return measureOne(ctx, s, "rollout failing on the last host", l, 3*time.Minute, log, func() stack.DeployResult {
		return s.Deployer.Deploy(ctx, next)
	})
}

// Measure puts the load of l on baseURL while act runs (bounded by maxRun
// in any case), then stops the load and reports. act records its deploys
// and their windows in the report it is given.
func Measure(ctx context.Context, name, baseURL string, l Load, maxRun time.Duration, act func(*Report, *httpload.Windows)) (*Report, error) {
	if err := stack.WaitHTTP(ctx, baseURL+"/healthz", 60*time.Second); err != nil {
		return nil, fmt.Errorf("%s: service not up before the load: %w", name, err)
	}
	rep := &Report{Name: name}
	var windows httpload.Windows
	var fl *wsfleet.Fleet
	if l.Clients > 0 {
		fl = wsfleet.New(wsfleet.Config{
			URL: "ws" + baseURL[len("http"):] + "/ws", Origin: baseURL,
			Clients: l.Clients, Rooms: l.Rooms, Send: l.Send, Prefix: sanitize(name), Movers: l.Movers,
			InDeploy: windows.Contains,
		})
		if err := fl.Connect(ctx, 30*time.Second); err != nil {
			fl.Close()
			return nil, fmt.Errorf("%s: connect clients: %w", name, err)
		}
		if err := fl.WaitOnline(ctx, 15*time.Second); err != nil {
			fl.Close()
			return nil, fmt.Errorf("%s: presence: %w", name, err)
		}
		fl.StartSending(ctx)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	type loadOut struct {
		rs  []httpload.Result
		err error
	}
	done := make(chan loadOut, 1)
	go func() {
		rs, err := httpload.Run(loadCtx, httpload.Config{
			URLs: []string{baseURL + "/", baseURL + "/healthz"}, Rate: l.Rate, Duration: maxRun,
		})
		done <- loadOut{rs, err}
	}()
	act(rep, &windows)
	stopLoad()
	out := <-done
	if out.err != nil {
		if fl != nil {
			fl.Close()
		}
		return nil, fmt.Errorf("%s: load: %w", name, out.err)
	}
	rep.HTTP = httpload.Summarize(out.rs, &windows)
	if fl != nil {
		wr := fl.Finish(ctx, 30*time.Second)
		rep.WS = &wr
	}
	return rep, nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func sanitize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			b[i] = '-'
		}
	}
	return string(b)
}
