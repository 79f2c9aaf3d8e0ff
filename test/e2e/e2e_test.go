//go:build e2e

// The short form of the zero-downtime proof (make test-e2e): the real Docker
// engine, nginx in its container, chat containers from Dockerfile.app and the
// deploy agent as a daemon, under HTTP and WebSocket load; then two such
// hosts in Redis mode behind a load balancer, rolled one after the other;
// compared with a stop-and-run deploy and a shell-script blue/green, then a
// subset of the fault scenarios. The long form is `go run ./test/e2e/cmd/zdt` (make bench).
package e2e

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/stack"
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
		Rate: envInt(t, "E2E_RATE", 200), Clients: envInt(t, "E2E_CLIENTS", 50), Movers: envInt(t, "E2E_MOVERS", 25), Rooms: 5,
		Send: 2 * time.Second, Deploys: envInt(t, "E2E_DEPLOYS", 3),
		Warmup: 3 * time.Second, Gap: 2 * time.Second, Tail: 2 * time.Second,
	}
	var reps []*zdt.Report
	var spreads [][]int
	var redisRep, failRep *zdt.Report
	var failServing []string
	for _, name := range []string{"agent", "fleet", "stop-and-run", "bluegreen"} {
		var s *zdt.Scenario
		switch name {
		case "agent":
			s, err = env.AgentScenario(ctx, "ag")
		case "fleet":
			s, err = env.FleetScenario(ctx, "fl")
		case "stop-and-run":
			s, err = env.StopAndRun(ctx)
		case "bluegreen":
			s, err = env.BlueGreen(ctx)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if name == "fleet" {
			// The agents check the network the colors and Redis share.
			for _, a := range s.Agents {
				if r := a.Command(ctx, "validate"); r.Exit != 0 || !strings.Contains(r.Output, "ok   app.network") {
					t.Errorf("%s validate: exit %d, want 0 with the network checked:\n%s", a.App, r.Exit, r.Output)
				}
			}
		}
		rep, err := zdt.Run(ctx, s.Name, s.URL(), s.Deployer, []string{env.Images.A, env.Images.B}, load, logf)
		if err == nil && len(s.Agents) > 0 {
			zdt.AttachSteps(ctx, rep, s.Agents...)
			if rep.FailedDeploys() > 0 {
				for _, a := range s.Agents {
					t.Logf("%s log:\n%s", a.App, a.LogTail(60))
				}
			}
		}
		if s.Redis != nil && err == nil {
			redisRep, err = zdt.RestartRedis(ctx, s, load, logf)
			if err != nil {
				s.Close()
				t.Fatalf("%s: %v", name, err)
			}
			t.Log("\n" + zdt.Details(redisRep))
			failRep, err = zdt.FailingRollout(ctx, s, []string{env.Images.A, env.Images.B}, load, logf)
			if err != nil {
				s.Close()
				t.Fatalf("%s: %v", name, err)
			}
			t.Log("\n" + zdt.Details(failRep))
			failServing = servingImages(t, s)
		}
		if r, ok := s.Deployer.(*stack.Rollout); ok && err == nil {
			// The measured rollouts; the setup's came before any client.
			all := r.Spreads()
			spreads = all[max(0, len(all)-len(rep.Deploys)):]
		}
		s.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Log("\n" + zdt.Details(rep))
		reps = append(reps, rep)
	}
	t.Log("\n" + zdt.Table(reps, load))

	// Every measurement really sent its load: a report with no traffic would
	// pass every zero below.
	for _, rep := range reps {
		expectTraffic(t, rep, load)
		expectDelayMeasured(t, rep)
	}
	// The agent alone, and two hosts sharing rooms through Redis behind a
	// load balancer: the same promise.
	for _, rep := range reps[:2] {
		expectUnharmed(t, rep)
		expectZero(t, rep, "deploys that did not exit 0", rep.FailedDeploys())
		expectZero(t, rep, "clients whose close was never followed by resumed", rep.WS.Unresolved)
		if len(rep.Deploys) != load.Deploys {
			t.Errorf("%s: deploys run: got %d, want %d", rep.Name, len(rep.Deploys), load.Deploys)
		}
		if v1 := load.Clients - load.Movers; rep.WS.Reconnects < v1*load.Deploys {
			t.Errorf("%s: got %d reconnects, want at least %d (every deploy closes every v1 client): is the load really going through the deployed colors?",
				rep.Name, rep.WS.Reconnects, v1*load.Deploys)
		}
		// One host is the setting the move's target is set for; the fleet
		// runs twice the containers and two more nginx hops on the same
		// cores, so it is held to the protocol's own promise instead.
		bound := maxHoldToGo
		if rep.Name != reps[0].Name {
			bound = maxHoldToGoFleet
		}
		expectMoved(t, rep, load, bound)
	}
	// Redis restarting under the fleet (append-only file on its volume):
	// sends wait and are retried; nothing is lost, doubled or reset, and no
	// request fails.
	if redisRep == nil {
		t.Error("fleet: the Redis restart under load did not run")
	} else {
		expectTraffic(t, redisRep, load)
		expectZero(t, redisRep, "restart failed", redisRep.FailedDeploys())
		expectUnharmed(t, redisRep)
	}
	// A rollout that meets a host that cannot start the release: it stops
	// there (exit 1), the host before it runs the new release, the failing
	// host still serves the old one, and users notice nothing.
	if failRep == nil {
		t.Error("fleet: the rollout that meets a failing host did not run")
	} else {
		expectTraffic(t, failRep, load)
		if len(failRep.Deploys) != 1 || failRep.Deploys[0].Exit != 1 || !strings.Contains(failRep.Deploys[0].Output, "exit 1") {
			t.Errorf("%s: want one rollout exiting 1 at the last host, got %+v", failRep.Name, failRep.Deploys)
		} else if next := failRep.Deploys[0].Image; len(failServing) != 2 || failServing[0] != next || failServing[1] == next {
			t.Errorf("%s: hosts serve %v, want the first on %s and the last still on the previous release", failRep.Name, failServing, next)
		}
		expectUnharmed(t, failRep)
	}
	// Rooms only span hosts if users do: before every rollout both hosts
	// must hold some of the clients.
	t.Logf("fleet: open connections per host before each rollout: %v", spreads)
	if len(spreads) != load.Deploys {
		t.Errorf("fleet: connections per host known for %d rollouts, want %d", len(spreads), load.Deploys)
	}
	for i, sp := range spreads {
		if len(sp) != 2 || sp[0] == 0 || sp[1] == 0 {
			t.Errorf("fleet rollout %d: connections per host %v, want clients on both hosts", i+1, sp)
		}
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
				if r.Report != nil {
					expectTraffic(t, r.Report, fl)
				}
			})
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

// expectTraffic checks that rep measured the load l: HTTP requests (at
// least one second's worth) and every WebSocket client, with messages sent.
func expectTraffic(t *testing.T, rep *zdt.Report, l zdt.Load) {
	t.Helper()
	if rep.HTTP.Total < l.Rate {
		t.Errorf("%s: %d HTTP requests measured, want at least %d (one second of load)", rep.Name, rep.HTTP.Total, l.Rate)
	}
	if l.Clients == 0 {
		return
	}
	if rep.WS == nil {
		t.Errorf("%s: no WebSocket report, want %d clients", rep.Name, l.Clients)
		return
	}
	if rep.WS.Clients != l.Clients || rep.WS.Sent == 0 {
		t.Errorf("%s: %d WebSocket clients sent %d messages, want %d clients and messages sent", rep.Name, rep.WS.Clients, rep.WS.Sent, l.Clients)
	}
}

// expectUnharmed checks what users of rep would have noticed: no failed
// request, no message lost, unacknowledged or doubled, every outbox empty,
// no resume that lost continuity.
func expectUnharmed(t *testing.T, rep *zdt.Report) {
	t.Helper()
	expectZero(t, rep, "failed HTTP requests", rep.HTTP.Failed)
	if rep.WS == nil {
		t.Errorf("%s: no WebSocket report", rep.Name)
		return
	}
	expectZero(t, rep, "WebSocket messages lost", rep.WS.Lost)
	expectZero(t, rep, "WebSocket messages unacknowledged", rep.WS.Unacked)
	expectZero(t, rep, "WebSocket messages doubled", rep.WS.Doubled)
	expectZero(t, rep, "outboxes not empty", rep.WS.NonEmptyOutbox)
	expectZero(t, rep, "resumes that lost continuity (reset)", rep.WS.Resets)
}

// maxHoldToGo bounds a move on one host as users would feel it: from hold
// to go the client sends nothing (docs/protocol.md v1.1).
const maxHoldToGo = 100 * time.Millisecond

// maxHoldToGoFleet bounds a move in the two-host fleet by what the protocol
// promises ("go arrives within 1 s of held in a normal deploy"): on a
// two-core machine the fleet's p99 swings between about 55 and 165 ms with
// the other load, so the 100 ms target is reported there, not asserted
// (BENCHMARKS.md).
const maxHoldToGoFleet = time.Second

// expectMoved checks the clients that offered caps:["move"]: every deploy
// moved each of them once, none of their sockets closed (so none
// reconnected), and hold → go stayed short.
func expectMoved(t *testing.T, rep *zdt.Report, load zdt.Load, maxHoldGo time.Duration) {
	t.Helper()
	ws := rep.WS
	t.Logf("%s: %d movers, %d moves, hold→go p50 %s p99 %s max %s", rep.Name, ws.Movers, ws.Moves, ws.HoldGoP50, ws.HoldGoP99, ws.HoldGoMax)
	if ws.Movers != load.Movers {
		t.Errorf("%s: %d clients offered move, want %d", rep.Name, ws.Movers, load.Movers)
	}
	expectZero(t, rep, "WebSocket closes of clients that offered move (each is a reconnect)", ws.MoverCloses)
	expectZero(t, rep, "moves whose go never came", ws.MovesUnfinished)
	if want := load.Movers * load.Deploys; ws.Moves != want {
		t.Errorf("%s: %d moves, want %d (every deploy moves every client that offered move)", rep.Name, ws.Moves, want)
	}
	if ws.HoldGoP99 >= maxHoldGo {
		t.Errorf("%s: hold→go p99 %s, want under %s", rep.Name, ws.HoldGoP99, maxHoldGo)
	}
}

// expectDelayMeasured checks that rep measured the delivery delay of `msg`
// in both phases. Its size is reported (the table, BENCHMARKS.md), not
// asserted: on a shared two-core machine it follows the other load.
func expectDelayMeasured(t *testing.T, rep *zdt.Report) {
	t.Helper()
	if rep.WS == nil {
		return // expectTraffic already said so
	}
	t.Logf("%s: msg delay steady %s; during deploys %s", rep.Name, rep.WS.DelaySteady, rep.WS.DelayDeploy)
	if rep.WS.DelaySteady.Count == 0 || rep.WS.DelayDeploy.Count == 0 {
		t.Errorf("%s: msg deliveries measured: %d in steady state, %d sent during deploys; want some of each",
			rep.Name, rep.WS.DelaySteady.Count, rep.WS.DelayDeploy.Count)
	}
}

func expectZero(t *testing.T, rep *zdt.Report, what string, got int) {
	t.Helper()
	if got != 0 {
		t.Errorf("%s: %s: got %d, want 0", rep.Name, what, got)
	}
}

// servingImages is the image (as the agent reports it) each host of s serves.
func servingImages(t *testing.T, s *zdt.Scenario) []string {
	t.Helper()
	var out []string
	for _, a := range s.Agents {
		st, err := a.Status(t.Context())
		if err != nil || st.Active == nil {
			t.Errorf("%s status: %v", a.App, err)
			out = append(out, "")
			continue
		}
		out = append(out, st.Active.Image)
	}
	return out
}

// testWriter sends the harness's JSON log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
