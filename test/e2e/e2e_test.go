//go:build e2e

// The short form of the zero-downtime proof (make test-e2e): the real Docker
// engine, nginx in its container, chat containers from Dockerfile.app and the
// deploy agent as a daemon, under HTTP and WebSocket load, compared with a
// stop-and-run deploy and a shell-script blue/green, then a subset of the
// fault scenarios. The long form is `go run ./test/e2e/cmd/zdt` (make bench).
package e2e

import (
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/zdt"
)

// envInt reads a knob of the short form, e.g. E2E_RATE=100 on a slow machine.
func envInt(t *testing.T, key string, def int) int {
	t.Helper()
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, v, err)
	}
	return n
}

func TestZeroDowntime(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.NewJSONHandler(testWriter{t}, nil))
	logf := func(msg string, args ...any) { log.Info(msg, args...) }
	env, err := zdt.Setup(ctx, true)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	t.Cleanup(env.Close)
	load := zdt.Load{
		Rate: envInt(t, "E2E_RATE", 200), Clients: envInt(t, "E2E_CLIENTS", 50), Rooms: 5,
		Send: 2 * time.Second, Deploys: envInt(t, "E2E_DEPLOYS", 3),
		Warmup: 3 * time.Second, Gap: 2 * time.Second, Tail: 2 * time.Second,
	}
	var reps []*zdt.Report
	for _, name := range []string{"agent", "stop-and-run", "bluegreen"} {
		var s *zdt.Scenario
		switch name {
		case "agent":
			s, err = env.AgentScenario(ctx, "ag")
		case "stop-and-run":
			s, err = env.StopAndRun(ctx)
		case "bluegreen":
			s, err = env.BlueGreen(ctx)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rep, err := zdt.Run(ctx, s.Name, s.URL(), s.Deployer, []string{env.Images.A, env.Images.B}, load, logf)
		if err == nil && s.Agent != nil {
			zdt.AttachSteps(ctx, rep, s.Agent)
			if rep.FailedDeploys() > 0 {
				t.Logf("agent log:\n%s", s.Agent.LogTail(60))
			}
		}
		s.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Log("\n" + zdt.Details(rep))
		reps = append(reps, rep)
	}
	t.Log("\n" + zdt.Table(reps, load))

	agent := reps[0]
	checks := []struct {
		name      string
		got, want int
	}{
		{"agent deploys that did not exit 0", agent.FailedDeploys(), 0},
		{"agent deploys run", len(agent.Deploys), load.Deploys},
		{"failed HTTP requests", agent.HTTP.Failed, 0},
		{"WebSocket messages lost", agent.WS.Lost, 0},
		{"WebSocket messages unacknowledged", agent.WS.Unacked, 0},
		{"WebSocket messages doubled", agent.WS.Doubled, 0},
		{"outboxes not empty", agent.WS.NonEmptyOutbox, 0},
		{"clients whose close was never followed by resumed", agent.WS.Unresolved, 0},
		{"resumes that lost continuity (reset)", agent.WS.Resets, 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("deploy-agent: %s: got %d, want %d", c.name, c.got, c.want)
		}
	}
	if agent.WS.Reconnects < load.Clients*load.Deploys {
		t.Errorf("deploy-agent: got %d reconnects, want at least %d (every deploy moves every client): is the load really going through the deployed colors?",
			agent.WS.Reconnects, load.Clients*load.Deploys)
	}

	t.Run("faults", func(t *testing.T) {
		fl := zdt.Load{Rate: envInt(t, "E2E_FAULT_RATE", 100), Clients: envInt(t, "E2E_FAULT_CLIENTS", 10), Rooms: 2,
			Send: 2 * time.Second, Tail: time.Second}
		rs, err := zdt.RunFaults(ctx, env, fl, true, nil, "", logf)
		t.Log("\n" + zdt.FaultTable(rs))
		for _, r := range rs {
			t.Run(r.Name, func(t *testing.T) {
				if r.Skipped != "" {
					t.Skip(r.Skipped)
				}
				if !r.Pass {
					t.Error(r.Detail)
				}
			})
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

// testWriter sends the harness's JSON log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
