package deploy

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/nginx"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// TestProbeSpacing: until the new color's first 200 the health gate asks every
// 20ms, the checks that count toward healthy_after stay an interval (100ms in
// the test config) apart, verify asks through nginx every 5ms until healthy_after answers
// come from the new color, and the old color is stopped as soon as verify passed.
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
		const fast, verifyEvery = 20 * time.Millisecond, 5 * time.Millisecond
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
		if !stops[0].Equal(v[2].at) {
			t.Errorf("the old color was stopped %s after verify passed, want at once", stops[0].Sub(v[2].at))
		}
		// The previous upstream lists green as backup: once blue is stopped, a request an old
		// nginx worker still takes is answered by green, so nothing waits for the handover.
		if !ended.Equal(v[2].at) {
			t.Errorf("the deploy ended %s after verify passed, want at once (the old color stopped at once)", ended.Sub(v[2].at))
		}
		for i := 1; i < len(v); i++ {
			if got := v[i].at.Sub(v[i-1].at); got != verifyEvery {
				t.Errorf("verify probe %d came %s after the one before, want %s", i+1, got, verifyEvery)
			}
		}
	})
}

// TestDrainEndsWithTheStop: the old color's stop starts as soon as verify passed, beside the wait
// for nginx's reload handover, and the deploy ends when both are over: here the stop takes longer.
func TestDrainEndsWithTheStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.eng.unhealthy = false
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		var verified time.Time
		w.d.Probe = func(ctx context.Context, u string, timeout time.Duration) (int, []byte, error) {
			if u == w.cfg.Proxy.CheckURL {
				verified = time.Now()
			}
			return w.probe(ctx, u, timeout)
		}
		const took = 400 * time.Millisecond
		w.eng.stopTook = took
		if o := w.deploy(state.KindDeploy, "example.com/team/chat:v2"); o.Exit != 0 {
			t.Fatalf("deploy = %+v", o)
		}
		ended := time.Now()
		if len(w.eng.stopAt) != 1 {
			t.Fatalf("%d containers stopped, want the old color", len(w.eng.stopAt))
		}
		if !w.eng.stopAt[0].Equal(verified) {
			t.Errorf("the old color's stop started %s after verify passed, want at once", w.eng.stopAt[0].Sub(verified))
		}
		if !ended.Equal(w.eng.stopDone[0]) {
			t.Errorf("the deploy ended %s after the old color's stop returned, want when it returned", ended.Sub(w.eng.stopDone[0]))
		}
		if got := w.state().Active; got == nil || got.Color != "green" {
			t.Errorf("active after the deploy = %+v, want green", got)
		}
	})
}

// TestVerifyThroughHandover: during nginx's reload handover an answer from the old color (an old
// worker took the probe) does not break the run of answers from the new one; after it, it does.
func TestVerifyThroughHandover(t *testing.T) {
	for _, tc := range []struct {
		name   string
		blues  int // old-color answers between the new color's first and the rest
		probes int // probes until verify passes with healthy_after 2
	}{
		{name: "an old worker answers inside the handover", blues: 3, probes: 5},
		// 35 probes 5ms apart reach 175ms after the first answer: those from 150ms on count.
		{name: "the old color still answers after it", blues: 35, probes: 38},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				n := 0
				w.d.Probe = func(context.Context, string, time.Duration) (int, []byte, error) {
					n++
					color := "green"
					if n > 1 && n <= 1+tc.blues {
						color = "blue"
					}
					return 200, []byte(`{"status":"ok","color":"` + color + `"}`), nil
				}
				start := time.Now()
				first, err := w.d.verify(t.Context(), &w.cfg, "green")
				if err != nil {
					t.Fatal(err)
				}
				if !first.Equal(start) {
					t.Errorf("first answer reported %s after the start, want the first probe's time", first.Sub(start))
				}
				if n != tc.probes {
					t.Errorf("verify passed after %d probes, want %d", n, tc.probes)
				}
			})
		})
	}
}

// TestDrainHandoverWait: the drain waits out nginx's reload handover (150ms after the new color's
// first answer through nginx) only when an old worker could otherwise still reach something
// other than the new color: with no old color (the placeholder before), with an upstream that
// names no backup, or when the old color could not be stopped. With the shipped template the
// deploy ends when the old color's stop returns.
func TestDrainHandoverWait(t *testing.T) {
	const stopTook = 40 * time.Millisecond
	for _, tc := range []struct {
		name    string
		arrange func(w *world)
		first   bool // the deploy under test is the first release
		wait    bool
	}{
		{name: "shipped template", arrange: func(*world) {}},
		{name: "first release", first: true, wait: true},
		{name: "template without backups", arrange: func(w *world) {
			render := w.d.Render
			w.d.Render = func(s nginx.Site) ([]byte, error) { s.Backups = nil; return render(s) }
		}, wait: true},
		{name: "old color not stopped", arrange: func(w *world) { w.eng.failStop = errors.New("engine busy") }, wait: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				w.eng.unhealthy = false
				image := "example.com/team/chat:v1"
				if !tc.first {
					tc.arrange(w) // before the release before: its upstream is the one replaced
					w.deploy(state.KindDeploy, image)
					image = "example.com/team/chat:v2"
				}
				var first time.Time
				w.d.Probe = func(ctx context.Context, u string, timeout time.Duration) (int, []byte, error) {
					code, body, err := w.probe(ctx, u, timeout)
					if u == w.cfg.Proxy.CheckURL && first.IsZero() && code == 200 {
						first = time.Now()
					}
					return code, body, err
				}
				w.eng.stopTook = stopTook
				if o := w.deploy(state.KindDeploy, image); o.Exit != 0 {
					t.Fatalf("deploy = %+v", o)
				}
				got := time.Since(first)
				want := 5*time.Millisecond + stopTook // verify's second answer, then the stop
				if tc.wait {
					want = reloadHandover
				}
				if got != want {
					t.Errorf("the deploy ended %s after the new color's first answer through nginx, want %s", got, want)
				}
			})
		})
	}
}
