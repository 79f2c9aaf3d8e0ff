package zdt

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/stack"
)

// KamalOptions configures the kamal scenario: the kamal-proxy binary (the
// project does not install it; the scenario fails when it is missing) and
// its health-check interval (0: Kamal's default, 1 s).
type KamalOptions struct {
	Bin            string
	HealthInterval time.Duration
}

// Compare sets up one Env and runs the named scenarios ("agent",
// "stop-and-run", "bluegreen", "kamal", "fleet") one after the other on the same load, then
// writes the tables and the details to w.
func Compare(ctx context.Context, l Load, which []string, faults string, only []string, faultLoad Load, engineRestart string, kamal KamalOptions, w io.Writer, log *slog.Logger) error {
	// A missing kamal-proxy is reported before anything is built.
	if slices.Contains(which, "kamal") {
		if err := stack.CheckBinary(kamal.Bin); err != nil {
			return fmt.Errorf("kamal scenario: %w", err)
		}
	}
	env, err := Setup(ctx, slices.Contains(which, "agent") || slices.Contains(which, "fleet") || faults != "none")
	if err != nil {
		return err
	}
	defer env.Close()
	env.HealthyAfter = l.HealthyAfter
	logf := func(msg string, args ...any) { log.Info(msg, args...) }
	var reps []*Report
	for _, name := range which {
		var s *Scenario
		switch name {
		case "":
			continue
		case "agent":
			s, err = env.AgentScenario(ctx, "ag")
		case "stop-and-run":
			s, err = env.StopAndRun(ctx)
		case "bluegreen":
			s, err = env.BlueGreen(ctx)
		case "kamal":
			s, err = env.Kamal(ctx, kamal.Bin, kamal.HealthInterval)
		case "fleet":
			s, err = env.FleetScenario(ctx, "fl")
		default:
			return fmt.Errorf("unknown scenario %q", name)
		}
		if err != nil {
			return err
		}
		log.Info("scenario start", "scenario", s.Name, "url", s.URL())
		rep, err := Run(ctx, s.Name, s.URL(), s.Deployer, []string{env.Images.A, env.Images.B}, l, logf)
		if err == nil && len(s.Agents) > 0 {
			AttachSteps(ctx, rep, s.Agents...)
		}
		var more []*Report // the fleet's Redis restart and failing rollout
		if err == nil && s.Redis != nil {
			var r *Report
			if r, err = RestartRedis(ctx, s, l, logf); err == nil {
				more = append(more, r)
				r, err = FailingRollout(ctx, s, []string{env.Images.A, env.Images.B}, l, logf)
				more = append(more, r)
			}
		}
		s.Close()
		if err != nil {
			return err
		}
		fmt.Fprint(w, Details(rep))
		for _, r := range more {
			fmt.Fprint(w, Details(r))
		}
		reps = append(reps, rep)
	}
	if len(reps) > 0 {
		fmt.Fprintln(w)
		fmt.Fprint(w, Table(reps, l))
		fmt.Fprintln(w)
		fmt.Fprint(w, WSTable(reps))
	}
	if faults == "none" {
		return nil
	}
	rs, err := RunFaults(ctx, env, faultLoad, faults == "short", only, engineRestart, logf)
	fmt.Fprintln(w)
	fmt.Fprint(w, FaultTable(rs))
	return err
}
