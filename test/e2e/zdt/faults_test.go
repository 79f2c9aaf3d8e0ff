package zdt

import (
	"strings"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/httpload"
	"github.com/mywebchat/mywebchat/test/e2e/stack"
	"github.com/mywebchat/mywebchat/test/e2e/wsfleet"
)

func TestSelected(t *testing.T) {
	tests := []struct {
		name string
		only []string
		want bool
	}{
		{"host reboot", nil, true},
		{"host reboot", []string{""}, true},
		{"host reboot", []string{"reboot"}, true},
		{"host reboot", []string{"template", "rollback"}, false},
	}
	for _, tt := range tests {
		if got := selected(tt.name, tt.only); got != tt.want {
			t.Errorf("selected(%q, %q) = %v, want %v", tt.name, tt.only, got, tt.want)
		}
	}
}

func TestZeroDowntimeVerdict(t *testing.T) {
	tests := []struct {
		name string
		rep  Report
		want string // substring of the error; empty means none
	}{
		{"clean", Report{WS: &wsfleet.Report{}}, ""},
		{"failed request", Report{HTTP: httpload.Summary{Failed: 2, ByReason: map[string]int{"HTTP 502": 2}}}, "2 failed HTTP requests"},
		{"lost message", Report{WS: &wsfleet.Report{Lost: 1}}, "lost=1"},
		{"outbox", Report{WS: &wsfleet.Report{NonEmptyOutbox: 1}}, "non-empty-outbox=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := zeroDowntime(&tt.rep)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTableRow(t *testing.T) {
	rep := &Report{Name: "deploy-agent",
		Deploys: []stack.DeployResult{{Duration: 4 * time.Second}, {Exit: 1, Duration: 6 * time.Second}},
		HTTP:    httpload.Summary{Total: 1000, Failed: 3},
		WS: &wsfleet.Report{Lost: 1, Unacked: 1, GapP50: 800 * time.Millisecond, GapP99: 1500 * time.Millisecond,
			Movers: 5, Moves: 10, MoverCloses: 1, HoldGoP50: 5600 * time.Microsecond, HoldGoP99: 81600 * time.Microsecond,
			DelaySteady: wsfleet.Delay{Count: 9, P50: 3 * time.Millisecond, P99: 12 * time.Millisecond},
			DelayDeploy: wsfleet.Delay{Count: 4, P50: 4 * time.Millisecond, P99: 95 * time.Millisecond}}}
	got := Table([]*Report{rep}, Load{Rate: 100, Clients: 10, Rooms: 2, Send: time.Second, Deploys: 2})
	want := "| deploy-agent | 1/2 | 3 of 1000 (1.5) | 5.0 | 2 | 0 | 0 | 800 ms / 1500 ms | 10 / 1 | 5.6 ms / 81.6 ms | 3.0 ms / 12.0 ms → 4.0 ms / 95.0 ms | 0 ms → 0 ms |"
	if !strings.Contains(got, want) {
		t.Errorf("got\n%s\nwant a row\n%s", got, want)
	}
}
