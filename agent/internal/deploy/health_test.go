package deploy

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// TestProbeSpacing: until the new color's first 200 the health gate asks every
// 20ms, the checks that count toward healthy_after stay an interval (100ms in
// the test config) apart, verify asks through nginx every 25ms until healthy_after answers in a
// row come from the new color, and the old color is stopped no sooner than nginx's reload
// handover (150ms) after the new color's first answer: until then old workers may send it new
// requests, which a draining color would answer 503.
func TestProbeSpacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.eng.unhealthy = false
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		type call struct {
			at     time.Time
			verify bool
			code   int
		}
		var calls []call
		health, verify := 0, 0
		w.d.Probe = func(ctx context.Context, u string, timeout time.Duration) (int, []byte, error) {
			c := call{at: time.Now(), verify: u == w.cfg.Proxy.CheckURL}
			var code int
			var body []byte
			var err error
			switch {
			case c.verify && verify == 0: // an old nginx worker answers first
				verify++
				code, body = 200, []byte(`{"status":"ok","color":"blue"}`)
			case c.verify:
				verify++
				code, body, err = w.probe(ctx, u, timeout)
			case health < 3: // the new color is still starting
				health++
				code, body = 503, []byte("starting")
			default:
				health++
				code, body, err = w.probe(ctx, u, timeout)
			}
			c.code = code
			calls = append(calls, c)
			return code, body, err
		}
		if o := w.deploy(state.KindDeploy, "example.com/team/chat:v2"); o.Exit != 0 {
			t.Fatalf("deploy = %+v", o)
		}
		ended := time.Now()
		var h, v []call
		for _, c := range calls {
			if c.verify {
				v = append(v, c)
			} else {
				h = append(h, c)
			}
		}
		// Health: 503, 503, 503, 200, 200; verify: blue, green, green.
		if len(h) != 5 || len(v) != 3 {
			t.Fatalf("%d health and %d verify probes, want 5 and 3: %+v", len(h), len(v), calls)
		}
		const fast, verifyEvery = 20 * time.Millisecond, 25 * time.Millisecond
		want := []time.Duration{fast, fast, fast, 100 * time.Millisecond}
		for i, d := range want {
			if got := h[i+1].at.Sub(h[i].at); got != d {
				t.Errorf("health probe %d came %s after the one before, want %s", i+2, got, d)
			}
		}
		stops := w.eng.stopAt
		if len(stops) != 1 {
			t.Fatalf("%d containers stopped, want the old color", len(stops))
		}
		if got := stops[0].Sub(v[1].at); got != reloadHandover {
			t.Errorf("the old color was stopped %s after the new color's first answer through nginx, want %s", got, reloadHandover)
		}
		if ended.Before(stops[0]) {
			t.Errorf("the deploy ended before the old color was stopped")
		}
		for i := 1; i < len(v); i++ {
			if got := v[i].at.Sub(v[i-1].at); got != verifyEvery {
				t.Errorf("verify probe %d came %s after the one before, want %s", i+1, got, verifyEvery)
			}
		}
	})
}
