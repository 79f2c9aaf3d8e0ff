//go:build integration

package rehearsal

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRehearsal runs the production path end to end: hosts bootstrapped by
// the README's user data, then releases through release.yml's deploy step
// under load, one scenario after the other on the same fleet.
func TestRehearsal(t *testing.T) {
	w := newWorld(t)
	shape := loadShape{Rate: 40, Clients: 12, Rooms: 3}
	if *long {
		shape = loadShape{Rate: 100, Clients: 40, Rooms: 8}
	}
	w.shape = shape
	// The figures of every scenario, printed whatever happened (after the
	// scenarios, before the hosts are removed).
	t.Cleanup(func() { t.Log(w.figureTables()) })
	// The images every host can "pull": a first push's, tagged latest too.
	r0 := w.buildRelease("")
	a := w.bootHost("host-a")
	b := w.bootHost("host-b")
	var later []*host // the long form's third host bootstraps like host-b
	if *long {
		later = append(later, w.bootHost("host-c"))
	}
	for _, h := range w.hosts {
		h.load(append(r0.tags(), "ghcr.io/"+owner+"/mywebchat-app:latest", "ghcr.io/"+owner+"/mywebchat-nginx:latest")...)
	}

	// A first host before any release: it serves the "back in a moment"
	// page and becomes a deploy target when its bootstrap ends.
	if out, err := a.bootstrap(); err != nil {
		t.Fatalf("host-a's user data failed: %v\n%s", err, out)
	}
	if got := w.instance(a.id).Tags[tagKey]; got != tagValue {
		t.Fatalf("after its bootstrap host-a is not tagged %s=%s (tags %v)", tagKey, tagValue, w.instance(a.id).Tags)
	}
	if st := a.status(t); st.Active != nil {
		t.Fatalf("host-a runs a release before any was recorded: %+v", st.Active)
	}

	// The first release reaches host-a only: host-b has not bootstrapped.
	r1 := w.buildRelease("")
	for _, h := range w.hosts {
		h.load(r1.tags()...)
	}
	rr := w.rollout(r1, true)
	t.Logf("first release: exit %d in %s", rr.exit, rr.took.Round(time.Millisecond))
	if rr.exit != 0 || rr.reportLine(a.id) != "deployed" || rr.reportLine(b.id) != "" {
		t.Fatalf("first release: exit %d, host-a %q, host-b %q (want 0, deployed, not mentioned)\n%s",
			rr.exit, rr.reportLine(a.id), rr.reportLine(b.id), rr.out.String())
	}
	w.requireOn(t, r1, a)
	if rec := w.recordedRelease(); rec["app"] != r1.app || rec["nginx"] != r1.nginx {
		t.Fatalf("recorded release %v, want app %s nginx %s", rec, r1.app, r1.nginx)
	}

	// A new host bootstraps straight onto the recorded release; host-b is
	// a private repository's: the bundle comes through GitHub's API with the
	// releases' token from Parameter Store, image pulls use the images' token.
	b.startGitHub()
	out, err := b.bootstrapPrivate()
	if err != nil {
		t.Fatalf("host-b's user data (private repository) failed: %v\n%s", err, out)
	}
	b.private = true
	b.requireFetchedPrivately(t, "latest")
	b.requireNoTokenOnDisk(t, out)
	if env := b.exec("cat /etc/mywebchat/host.env"); !strings.Contains(env, "GHCR_TOKEN_PARAM='"+tokenParam+"'") ||
		!strings.Contains(env, "MYWEBCHAT_BUNDLE_TOKEN_PARAM='"+bundleTokenParam+"'") ||
		strings.Contains(env, "MYWEBCHAT_RELEASES_URL") || !strings.Contains(env, "MYWEBCHAT_GITHUB_API='"+githubAPI+"'") {
		t.Fatalf("host-b's host.env does not record the private repository's settings:\n%s", env)
	}
	w.requireOn(t, r1, b)
	if got := w.instance(b.id).Tags[tagKey]; got != tagValue {
		t.Fatalf("after its bootstrap host-b is not tagged %s=%s", tagKey, tagValue)
	}
	for _, h := range later {
		if out, err := h.bootstrap(); err != nil {
			t.Fatalf("%s's user data failed: %v\n%s", h.name, err, out)
		}
		w.requireOn(t, r1, h)
	}

	t.Run("app-only release", func(t *testing.T) {
		r := w.buildRelease("")
		for _, h := range w.hosts {
			h.load(r.tags()...)
		}
		before := map[string]string{}
		for _, h := range w.hosts {
			before[h.name] = h.nginxContainer()
		}
		l := w.startLoad(shape, "app", w.hosts...)
		rr := w.rollout(r, true)
		outcome := l.stop()
		f := scenarioFigures{name: "app-only release", rollouts: []rolloutFigures{w.rolloutFigure("1", rr, outcome)}}
		for _, h := range w.hosts {
			nginx := "same container, same start time"
			if now := h.nginxContainer(); now != before[h.name] {
				nginx = "RESTARTED"
				t.Errorf("%s: an app-only release restarted nginx: %q, then %q", h.name, before[h.name], now)
			}
			f.users = append(f.users, userFigure(h.name, outcome[h.name], nginx))
		}
		w.record(f)
		w.checkRollout(t, rr, outcome, r)
	})

	t.Run("page change", func(t *testing.T) {
		r := w.buildRelease("page-2")
		for _, h := range w.hosts {
			h.load(r.tags()...)
		}
		before := map[string]string{}
		for _, h := range w.hosts {
			before[h.name] = h.nginxContainer()
		}
		l := w.startLoad(shape, "page", w.hosts...)
		rr := w.rollout(r, true)
		outcome := l.stop()
		f := scenarioFigures{name: "page change (nginx updated beside the old one)", rollouts: []rolloutFigures{w.rolloutFigure("1", rr, outcome)}}
		for _, h := range w.hosts {
			nginx := "new container"
			if now := h.nginxContainer(); now == before[h.name] {
				nginx = "NOT UPDATED"
			}
			f.users = append(f.users, userFigure(h.name, outcome[h.name], nginx))
		}
		w.record(f)
		w.checkRollout(t, rr, outcome, r)
		for _, h := range w.hosts {
			if now := h.nginxContainer(); now == before[h.name] {
				t.Errorf("%s: the page changed but nginx still runs the old container %q", h.name, now)
			}
			if page := get(t, h.base()+"/"); !strings.Contains(page, "<!-- page-2 -->") {
				t.Errorf("%s does not serve the new page", h.name)
			}
		}
	})

	t.Run("three consecutive rollouts", func(t *testing.T) { w.consecutive(t, shape, 3) })
	var good release
	t.Run("failing release", func(t *testing.T) {
		st := w.hosts[0].status(t)
		good = release{app: st.Active.Image}
		good.nginx = strings.TrimSpace(w.hosts[0].exec("sed -n 's/^NGINX_IMAGE=//p' /etc/mywebchat/nginx.env"))
		w.failing(t, shape, good)
	})
	t.Run("SSM agent down", func(t *testing.T) { w.agentDown(t, shape) })
	t.Run("tagged host not managed by SSM", func(t *testing.T) { w.unmanaged(t) })
	t.Run("cancelled job", func(t *testing.T) { w.cancelled(t, shape) })
	t.Run("agent upgrade", func(t *testing.T) { w.agentUpgrade(t, shape) })
	t.Run("token rotation", func(t *testing.T) { w.tokenRotation(t) })
	t.Run("units in their sandboxes", func(t *testing.T) { w.sandboxes(t) })
	t.Run("fleet drain in its sandbox", func(t *testing.T) { w.fleetDrain(t) })
}

// checkRollout asserts a rollout that should succeed on every host: exit
// 0, every host reported deployed and running r, the release recorded, and
// users noticed nothing.
func (w *world) checkRollout(t *testing.T, rr *rolloutRun, outcome map[string]loadOutcome, r release) {
	t.Helper()
	t.Logf("rollout: exit %d in %s", rr.exit, rr.took.Round(time.Millisecond))
	if rr.exit != 0 {
		t.Errorf("the deploy step exited %d\n%s", rr.exit, rr.out.String())
	}
	for _, h := range w.hosts {
		if line := rr.reportLine(h.id); line != "deployed" {
			t.Errorf("%s (%s): report says %q, want deployed", h.name, h.id, line)
		}
		w.requireOn(t, r, h)
		o := outcome[h.name]
		t.Logf("%s: %s", h.name, o)
		if !o.served() {
			t.Errorf("%s: users noticed the rollout: %s", h.name, o)
		}
	}
	if rec := w.recordedRelease(); rec["app"] != r.app || rec["nginx"] != r.nginx {
		t.Errorf("recorded release %v, want app %s nginx %s", rec, r.app, r.nginx)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// requireOn checks that h runs r: the agent's active release and the nginx
// image recorded for the unit.
func (w *world) requireOn(t testing.TB, r release, h *host) {
	t.Helper()
	st := h.status(t)
	if st.Active == nil || st.Active.Image != r.app || !st.Active.Healthy {
		t.Fatalf("%s: active release %+v, want %s healthy", h.name, st.Active, r.app)
	}
	env := h.exec("cat /etc/mywebchat/nginx.env")
	if !strings.Contains(env, "NGINX_IMAGE="+r.nginx+"\n") {
		t.Fatalf("%s: nginx.env does not name %s:\n%s", h.name, r.nginx, env)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
