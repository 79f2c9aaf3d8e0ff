//go:build integration

package main

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSmoke runs each mode once, tiny, against a freshly built chat server,
// so the benchmark harness cannot rot between benchmark runs.
func TestSmoke(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "chatserver")
	if out, err := exec.Command("go", "build", "-o", bin, "../../chatserver").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tests := []struct {
		mode  string
		move  bool
		check func(r map[string]any) bool
	}{
		{"fanout", false, func(r map[string]any) bool {
			return r["deliveries"] == r["expected"] && r["expected"].(int) > 0 && r["handshake_errors"] == int64(0)
		}},
		{"idle", false, func(r map[string]any) bool { return r["rss_kb_per_conn"].(float64) > 0 }},
		{"wave", false, func(r map[string]any) bool {
			return r["resume_ok"] == 20 && r["blue_exit_code"] == 0 && r["not_resumed"] == int64(0) &&
				r["unacked_outbox"] == 0 && r["handshake_errors_during_wave"] == int64(0) &&
				r["dupes"] == 0 && r["seq_gaps"] == 0
		}},
		// Clients that offer the move are moved to green on their sockets:
		// no close, no resume, nothing left unacked, no seq skipped or repeated
		// while some of them kept sending.
		{"wave", true, func(r map[string]any) bool {
			return r["moved"] == 20 && r["closes"] == 0 && r["resume_ok"] == 0 && r["blue_exit_code"] == 0 &&
				r["not_resumed"] == int64(0) && r["unacked_outbox"] == 0 && r["dupes"] == 0 && r["seq_gaps"] == 0
		}},
	}
	for _, tt := range tests {
		name := tt.mode
		if tt.move {
			name += "-move"
		}
		t.Run(name, func(t *testing.T) {
			var got map[string]any
			o := options{mode: tt.mode, proto: "chat", bin: bin, n: 20, rooms: 2, rate: 10,
				duration: time.Second, settle: 500 * time.Millisecond, dialPar: 10, lite: true, move: tt.move,
				result: func(r map[string]any) { got = r }}
			if err := run(t.Context(), o); err != nil {
				t.Fatal(err)
			}
			if got == nil || !tt.check(got) {
				t.Fatalf("report %v", got)
			}
		})
	}
}
