//go:build integration

package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// killRecoveryBound is far below the daemon's 30 s periodic reconcile, so only the engine event
// path can meet it.
const killRecoveryBound = 10 * time.Second

// eventReconcileMsg is the daemon's log message for a reconcile triggered by a container event.
const eventReconcileMsg = "reconciling after a container event"

// TestKilledActiveRecoversFast kills the active chat container and expects the agent, told by
// the engine's event stream, to have it serving healthy again through nginx within seconds. It
// also checks that the events the agent causes itself (stopping the old color after a switch)
// trigger a reconcile that changes nothing.
func TestKilledActiveRecoversFast(t *testing.T) {
	h := newHost(t, hostOpts{mode: "host", keep: 3, startTimeout: "8s"})
	h.startAgent("")
	h.startNginx()
	h.mustDeploy(imgV1)
	assertServing(t, h, "blue")

	// The switch to green stops blue: a stop/die event of our own making.
	h.mustDeploy(imgV2)
	waitLog(t, h, eventReconcileMsg, 1, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	assertServing(t, h, "green")
	if recs := h.history(); len(recs) != 2 {
		t.Fatalf("history after two deploys has %d records, want 2 (no reconcile switch): %+v", len(recs), recs)
	}

	st := h.status()
	active := st.Active.Container
	before := countLog(t, h, eventReconcileMsg)
	killed := time.Now()
	if out, err := exec.Command("docker", "kill", active).CombinedOutput(); err != nil {
		t.Fatalf("docker kill %s: %v %s", active, err, out)
	}
	var recovered time.Duration
	for {
		if color, err := h.servedColor(); err == nil && color == "green" {
			recovered = time.Since(killed)
			break
		}
		if time.Since(killed) > killRecoveryBound {
			t.Fatalf("not serving through nginx %s after docker kill %s", killRecoveryBound, active)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("killed active %s served healthy again through nginx after %s", active, recovered.Round(time.Millisecond))
	if n := countLog(t, h, eventReconcileMsg); n <= before {
		t.Fatalf("recovered without an event-triggered reconcile (log count %d, was %d)", n, before)
	}
	assertServing(t, h, "green")
}

func countLog(t *testing.T, h *host, msg string) int {
	t.Helper()
	b, err := os.ReadFile(h.agentLog.Name())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), msg)
}

// waitLog waits until msg appears at least n times in the agent log.
func waitLog(t *testing.T, h *host, msg string, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for countLog(t, h, msg) < n {
		if time.Now().After(deadline) {
			t.Fatalf("agent log has no %q within %s", msg, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
