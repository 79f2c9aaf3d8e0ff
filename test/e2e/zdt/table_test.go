package zdt

import (
	"strings"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/stack"
	"github.com/mywebchat/mywebchat/test/e2e/wsfleet"
)

func TestWSTableDeploySecondsAndSockets(t *testing.T) {
	deploys := func(secs ...float64) []stack.DeployResult {
		var ds []stack.DeployResult
		for _, s := range secs {
			ds = append(ds, stack.DeployResult{Duration: time.Duration(s * float64(time.Second))})
		}
		return ds
	}
	reps := []*Report{
		{Name: "kamal-proxy", Deploys: deploys(0.5, 3.1, 0.4, 0.6),
			WS: &wsfleet.Report{Clients: 40, Reconnects: 160, Abnormal: 160, Resets: 160, GapP50: 250 * time.Millisecond, GapP99: 499 * time.Millisecond, GapMax: 502 * time.Millisecond}},
		{Name: "deploy-agent", Deploys: deploys(0.9, 0.8, 1.0)},
	}
	got := WSTable(reps)
	for _, want := range []string{
		"| kamal-proxy | 1.15 / 0.55 / 3.10 | 0 of 0 | 40 (0) | 160 | 160 | 160 | 250 ms / 499 ms / 502 ms | 0 | 0 / 0 / 0 |",
		"| deploy-agent | 0.90 / 0.90 / 1.00 | 0 of 0 | 0 | – | – | – | – | – | – |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}
