//go:build integration

package deploytest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The slow rollout tests: real time against SSM's timeouts, which cannot be
// shorter than 30 s. They need bash, jq and a JDK, no Docker engine.

// simulatedHostSeconds is how long each simulated deploy takes.
const simulatedHostSeconds = 1.5

func twentyHosts(r *rollout, seconds float64) {
	for i := 1; i <= 20; i++ {
		r.host(fmt.Sprintf("i-%02d", i), true, "", fmt.Sprintf("DELAY=%g", seconds))
	}
}

// TestRolloutTwentyHostsOneAtATime: 20 hosts one at a time take longer than
// the 30 s delivery timeout, yet every host is deployed, because each host
// gets its own command sent when the one before has finished. The same 20
// hosts as one SSM command with that timeout (the rollout before batching)
// leave the later hosts DeliveryTimedOut: that is what the batching fixes.
func TestRolloutTwentyHostsOneAtATime(t *testing.T) {
	t.Parallel()
	r := newRollout(t)
	twentyHosts(r, simulatedHostSeconds)
	r.vars["DEPLOY_DELIVERY_TIMEOUT"] = "30"
	r.vars["DEPLOY_POLL_SECONDS"] = "0.2"
	start := time.Now()
	out, code := r.run()
	elapsed := time.Since(start)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	want := map[string]string{}
	for i := 1; i <= 20; i++ {
		want[fmt.Sprintf("i-%02d", i)] = "deployed"
	}
	wantReport(t, out, want)
	sends := r.calls("ssm", "send-command")
	if len(sends) != 20 {
		t.Fatalf("%d sends, want 20", len(sends))
	}
	for _, s := range sends {
		if argAfter(s, "--timeout-seconds") != "30" || argAfter(s, "--max-concurrency") != "1" || argAfter(s, "--max-errors") != "0" {
			t.Errorf("send %v", s)
		}
	}
	if elapsed < 30*time.Second {
		t.Errorf("the rollout took %s, under the 30 s delivery timeout: the test shows nothing", elapsed)
	}
	perHost := elapsed.Seconds() / 20
	t.Logf("rollout of 20 simulated hosts, one at a time: %.1f s, %.2f s per host (%.1f s the simulated deploy, %.2f s the loop and the fake)",
		elapsed.Seconds(), perHost, simulatedHostSeconds, perHost-simulatedHostSeconds)
}

func TestSingleCommandDeliveryTimesOut(t *testing.T) {
	t.Parallel()
	r := newRollout(t)
	// 20 × 2.5 s: the last hosts are due well after the 30 s.
	twentyHosts(r, 2.5)
	aws := func(args ...string) string {
		out, err := r.aws(args...)
		if err != nil {
			t.Fatalf("aws %v: %v", args, err)
		}
		return out
	}
	id := aws("ssm", "send-command", "--document-name", "MyWebChat-Deploy", "--targets", "Key=tag:App,Values=mywebchat",
		"--parameters", `{"ImageRef":["`+appRef+`"]}`, "--max-concurrency", "1", "--max-errors", "0",
		"--timeout-seconds", "30", "--query", "Command.CommandId", "--output", "text")
	deadline := time.Now().Add(90 * time.Second)
	for {
		st := aws("ssm", "list-commands", "--command-id", id, "--query", "Commands[0].Status", "--output", "text")
		if st != "Pending" && st != "InProgress" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("command still %s", st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	inv := aws("ssm", "list-command-invocations", "--command-id", id, "--query", "CommandInvocations[].[InstanceId,StatusDetails]", "--output", "text")
	var ok, timedOut int
	for _, l := range strings.Split(inv, "\n") {
		switch {
		case strings.HasSuffix(l, "\tSuccess"):
			ok++
		case strings.HasSuffix(l, "\tDeliveryTimedOut"):
			timedOut++
		default:
			t.Errorf("invocation %q", l)
		}
	}
	if ok+timedOut != 20 || timedOut == 0 {
		t.Errorf("%d succeeded, %d DeliveryTimedOut: want some hosts never reached", ok, timedOut)
	}
	t.Logf("one command to 20 hosts one at a time, --timeout-seconds 30: %d deployed, %d DeliveryTimedOut", ok, timedOut)
}

// TestRolloutBatches: 25% of 20 hosts is 5 per command, 4 commands.
func TestRolloutBatches(t *testing.T) {
	t.Parallel()
	r := newRollout(t)
	twentyHosts(r, simulatedHostSeconds)
	r.vars["DEPLOY_MAX_CONCURRENCY"] = "25%"
	r.vars["DEPLOY_POLL_SECONDS"] = "0.2"
	start := time.Now()
	out, code := r.run()
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	sends := r.calls("ssm", "send-command")
	if len(sends) != 4 {
		t.Fatalf("%d sends, want 4", len(sends))
	}
	for i, s := range sends {
		ids := strings.Fields(argAfter(s, "--instance-ids"))
		if len(ids) != 5 || ids[0] != fmt.Sprintf("i-%02d", 5*i+1) || argAfter(s, "--max-concurrency") != "5" {
			t.Errorf("send %d: %v", i, s)
		}
	}
	t.Logf("rollout of 20 simulated hosts, 25%% at a time: %.1f s", time.Since(start).Seconds())
}

// TestRolloutOutOfTime: a host that never finishes; before the job's own
// time limit (DEPLOY_TIMEOUT_MINUTES 3, so 60 s for the rollout) the step
// cancels the command, reports, and fails.
func TestRolloutOutOfTime(t *testing.T) {
	t.Parallel()
	r := newRollout(t)
	r.host("i-01", true, "", "DELAY=600")
	r.host("i-02", true, "", "")
	r.vars["DEPLOY_TIMEOUT_MINUTES"] = "3"
	r.vars["DEPLOY_POLL_SECONDS"] = "1"
	start := time.Now()
	out, code := r.run()
	elapsed := time.Since(start)
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if elapsed < 60*time.Second || elapsed > 120*time.Second {
		t.Errorf("ended after %s, want a little over 60 s", elapsed)
	}
	if !strings.Contains(out, "out of time (DEPLOY_TIMEOUT_MINUTES=3)") || len(r.calls("ssm", "cancel-command")) != 1 {
		t.Errorf("no cancel at the deadline:\n%s", out)
	}
	wantReport(t, out, map[string]string{
		"i-01": "NOT FINISHED: its deploy was cancelled", "i-02": "not deployed: the rollout stopped",
	})
	if r.ran("i-02") || r.recorded() != "" {
		t.Error("the rollout went on past its time")
	}
}
