package deploy

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/nginx"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

func dockerImage(id, digest string) docker.Image {
	return docker.Image{ID: id, RepoDigests: []string{digest}}
}

func TestDeployTwiceSwitchesColors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		o := w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		if o.Exit != 0 || o.Result != state.Succeeded {
			t.Fatalf("first deploy = %+v", o)
		}
		if w.servedPort() != 8081 || !w.running("chat-blue") {
			t.Fatalf("after first deploy: upstream port %d, blue running %v; want 8081 and true", w.servedPort(), w.running("chat-blue"))
		}
		spec := w.eng.creates[0]
		for _, want := range []string{"APP_COLOR=blue", "APP_VERSION=v1", "CHAT_HANDOVER_DIR=/handover", "A=1"} {
			if !slices.Contains(spec.Env, want) {
				t.Errorf("env %v lacks %s", spec.Env, want)
			}
		}
		if spec.Image != "sha256:1111" || spec.HostPort != 8081 || spec.Labels[LabelRelease] != o.ID || spec.Labels[LabelImage] != "example.com/team/chat:v1" {
			t.Errorf("spec = %+v: want it to run by image ID on 8081 with labels", spec)
		}
		if spec.Network != "" {
			t.Errorf("spec.Network = %q without app.network, want the default bridge", spec.Network)
		}
		fi, err := os.Stat(w.cfg.StateDir + "/handover/chat")
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("handover folder: %v %v", fi, err)
		} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65532 || st.Gid != 65532 {
			t.Errorf("handover folder owned by %d:%d, want the image's user 65532:65532", st.Uid, st.Gid)
		}
		// The agent holds no capability to chown: the engine gives the folders.
		if want := "65532:65532 " + w.cfg.StateDir + "/handover/chat"; len(w.eng.gives) != 1 || !strings.HasPrefix(w.eng.gives[0], want) {
			t.Errorf("folders given through the engine: %q, want one call starting %q", w.eng.gives, want)
		}

		o = w.deploy(state.KindDeploy, "example.com/team/chat:v2")
		if o.Exit != 0 {
			t.Fatalf("second deploy = %+v", o)
		}
		if len(w.eng.gives) != 1 {
			t.Errorf("the second deploy gave folders already the image user's again: %q", w.eng.gives)
		}
		st := w.state()
		if st.Active.Color != "green" || st.Active.Digest != "sha256:2222" || st.Previous.Color != "blue" {
			t.Errorf("state = active %+v previous %+v", st.Active, st.Previous)
		}
		if w.servedPort() != 8082 || w.running("chat-blue") || !w.running("chat-green") {
			t.Errorf("after second deploy: port %d, blue running %v, green running %v", w.servedPort(), w.running("chat-blue"), w.running("chat-green"))
		}
		if _, kept := w.eng.containers["chat-blue"]; !kept {
			t.Error("old color's container was removed; it must be kept for rollback")
		}
		recs, _ := w.d.Store.History(1)
		var names []string
		for _, s := range recs[0].Steps {
			names = append(names, s.Name)
		}
		if !slices.Equal(names, Steps) {
			t.Errorf("journaled steps = %v, want %v", names, Steps)
		}
		if w.reloads != 2 {
			t.Errorf("nginx reloads = %d, want 2", w.reloads)
		}
	})
}

// TestDeployJoinsAppNetwork: with app.network set, both colors (and a
// container the reconcile recreates) join it, so a Redis on it is reachable.
func TestDeployJoinsAppNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.cfg.App.Network = "mywebchat"
		for _, ref := range []string{"example.com/team/chat:v1", "example.com/team/chat:v2"} {
			if o := w.deploy(state.KindDeploy, ref); o.Exit != 0 {
				t.Fatalf("deploy %s = %+v", ref, o)
			}
		}
		for _, s := range w.eng.creates {
			if s.Network != "mywebchat" {
				t.Errorf("%s created on network %q, want mywebchat", s.Name, s.Network)
			}
		}
	})
}

func TestDeployBadInput(t *testing.T) {
	tests := []struct{ name, image, want string }{
		{"foreign repository", "example.com/other/chat:v1", "not in the repository"},
		{"no tag", "example.com/team/chat", "needs a tag or a digest"},
		{"garbage", "Example.com/UPPER:@@", "not an image reference"},
		{"empty", "", "no image given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			o := w.deploy(state.KindDeploy, tt.image)
			if o.Exit != 2 || !strings.Contains(o.Message, tt.want) {
				t.Errorf("deploy(%q) = exit %d %q, want exit 2 with %q", tt.image, o.Exit, o.Message, tt.want)
			}
			if len(w.eng.creates)+len(w.eng.pulls) != 0 || w.upstream() != "" {
				t.Errorf("bad input changed something: creates %v pulls %v upstream %q", w.eng.creates, w.eng.pulls, w.upstream())
			}
		})
	}
}

func TestDeployPullsAbsentImageWithAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.eng.registry["example.com/team/chat:v3"] = dockerImage("sha256:3333", "example.com/team/chat@sha256:abababababababababababababababababababababababababababababababab")
		w.d.Auth = func(host string) (string, error) { return "auth-for-" + host, nil }
		o := w.deploy(state.KindDeploy, "example.com/team/chat:v3")
		if o.Exit != 0 {
			t.Fatalf("deploy = %+v", o)
		}
		if !slices.Equal(w.eng.pulls, []string{"example.com/team/chat:v3"}) || w.eng.auths[0] != "auth-for-example.com" {
			t.Errorf("pulls %v auths %v", w.eng.pulls, w.eng.auths)
		}
		if got := w.eng.creates[0].Image; got != "example.com/team/chat@sha256:abababababababababababababababababababababababababababababababab" {
			t.Errorf("runs %q, want the registry digest", got)
		}
		if d := w.state().Active.Digest; d != "sha256:abababababababababababababababababababababababababababababababab" {
			t.Errorf("recorded digest %q", d)
		}
		w.deploy(state.KindDeploy, "example.com/team/chat:v3")
		if len(w.eng.pulls) != 1 {
			t.Errorf("present image pulled again: %v", w.eng.pulls)
		}
	})
}

func TestDeployFailuresLeaveOldReleaseServing(t *testing.T) {
	tests := []struct {
		name       string
		arrange    func(w *world)
		wantResult string
		wantMsg    []string
	}{
		{"never healthy", func(w *world) { w.eng.unhealthy = true; w.eng.logs = "panic: no database" }, state.Failed,
			[]string{"not healthy within 3s", "HTTP 503", "panic: no database", "old release still serves"}},
		{"crashes at start", func(w *world) { w.eng.crash = true; w.eng.logs = "exec format error" }, state.Failed,
			[]string{"is exited (exit code 3)", "exec format error"}},
		{"create fails", func(w *world) { w.eng.failCreate = errors.New("no space left") }, state.Failed, []string{"no space left"}},
		{"image absent everywhere", func(w *world) {}, state.Failed, []string{"manifest unknown"}},
		{"nginx test rejects the template", func(w *world) {
			w.d.Render = func(s nginx.Site) ([]byte, error) { return []byte("upstream chat { BROKEN }"), nil }
		}, state.Failed, []string{"nginx config test failed", "BROKEN", "nginx left as it was"}},
		{"verify sees the old color", func(w *world) { w.verifyColor = "blue" }, state.RolledBack,
			[]string{"verify through nginx failed", `answered by color "blue"`, "rolled back"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				if o := w.deploy(state.KindDeploy, "example.com/team/chat:v1"); o.Exit != 0 {
					t.Fatalf("setup deploy = %+v", o)
				}
				before, reloads := w.upstream(), w.reloads
				tt.arrange(w)
				image := "example.com/team/chat:v2"
				if tt.name == "image absent everywhere" {
					image = "example.com/team/chat:v9"
				}
				o := w.deploy(state.KindDeploy, image)
				if o.Exit != 1 || o.Result != tt.wantResult {
					t.Fatalf("deploy = exit %d result %s (%s), want exit 1 %s", o.Exit, o.Result, o.Message, tt.wantResult)
				}
				for _, m := range tt.wantMsg {
					if !strings.Contains(o.Message, m) {
						t.Errorf("message %q lacks %q", o.Message, m)
					}
				}
				if w.upstream() != before {
					t.Errorf("upstream changed:\n%s\nwant:\n%s", w.upstream(), before)
				}
				if tt.wantResult == state.Failed && w.reloads != reloads {
					t.Errorf("nginx reloaded %d times on a failure before the switch", w.reloads-reloads)
				}
				if _, ok := w.eng.containers["chat-green"]; ok {
					t.Error("the failed color's container was not removed")
				}
				// After a switch, nginx workers of the undone config may still have requests in
				// flight to the new color: it is stopped gracefully (SIGTERM) before removal.
				if tt.wantResult == state.RolledBack && !slices.Contains(w.eng.stops, "chat-green") {
					t.Errorf("rolled back without stopping the new color gracefully first: stops %v", w.eng.stops)
				}
				if !w.running("chat-blue") || w.state().Active.Color != "blue" {
					t.Error("the old release is not serving any more")
				}
				recs, _ := w.d.Store.History(1)
				if recs[0].Result != tt.wantResult || recs[0].Reason != o.Message {
					t.Errorf("journal = %s %q", recs[0].Result, recs[0].Reason)
				}
			})
		})
	}
}

func TestRollbackReusesStoppedContainer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		w.deploy(state.KindDeploy, "example.com/team/chat:v2")
		creates := len(w.eng.creates)
		o := w.deploy(state.KindRollback, "")
		if o.Exit != 0 {
			t.Fatalf("rollback = %+v", o)
		}
		if len(w.eng.creates) != creates {
			t.Errorf("rollback created a container; want the stopped one started again")
		}
		st := w.state()
		if st.Active.Color != "blue" || st.Active.Image != "example.com/team/chat:v1" || st.Previous.Color != "green" {
			t.Errorf("after rollback: active %+v previous %+v", st.Active, st.Previous)
		}
		if w.servedPort() != 8081 || w.running("chat-green") {
			t.Errorf("served port %d, green running %v", w.servedPort(), w.running("chat-green"))
		}
		// Without its container, a rollback recreates it from the pinned image.
		w.eng.RemoveContainer(context.Background(), "chat-green")
		if o := w.deploy(state.KindRollback, ""); o.Exit != 0 || w.eng.creates[len(w.eng.creates)-1].Image != "sha256:2222" {
			t.Errorf("rollback without container = %+v, last create %+v", o, w.eng.creates[len(w.eng.creates)-1])
		}
	})
}

func TestRollbackWithoutPrevious(t *testing.T) {
	w := newWorld(t)
	if o := w.deploy(state.KindRollback, ""); o.Exit != 2 || !strings.Contains(o.Message, "no previous release") {
		t.Errorf("rollback = %+v, want exit 2", o)
	}
}

func TestAbortBeforeSwitchUndoes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		w.eng.unhealthy = true // keeps the health gate waiting
		abort := make(chan struct{})
		go func() { time.Sleep(500 * time.Millisecond); close(abort) }()
		o := w.d.Deploy(context.Background(), abort, Request{ID: "20261123T050000Z-aaaaaaaa", Kind: state.KindDeploy, Image: "example.com/team/chat:v2"}, Hooks{})
		if o.Exit != 1 || !strings.Contains(o.Message, "stopping") {
			t.Errorf("aborted deploy = %+v", o)
		}
		if _, ok := w.eng.containers["chat-green"]; ok || w.servedPort() != 8081 {
			t.Errorf("abort left green behind or switched nginx")
		}
	})
}

func TestStepsJournaledBeforeTheyRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		var seen []string
		w.eng.unhealthy = false
		w.d.Probe = func(ctx context.Context, u string, timeout time.Duration) (int, []byte, error) {
			p, _ := w.d.Store.LoadProgress()
			if p != nil {
				seen = append(seen, p.Step)
			}
			return w.probe(ctx, u, timeout)
		}
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		if !slices.Contains(seen, StepHealth) || !slices.Contains(seen, StepVerify) {
			t.Errorf("progress.json steps seen during probes = %v, want health and verify", seen)
		}
	})
}

// TestDeployLocalImageByRecordedDigest: a locally built image has no registry digest, so status
// reports its image ID as the digest; `deploy --image repo@<that digest>` must run it without a
// pull, and only when the image is tagged in app.repository.
func TestDeployLocalImageByRecordedDigest(t *testing.T) {
	const id = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
	tests := []struct {
		name     string
		tag      string
		wantExit int
	}{
		{"tagged in the repository", "example.com/team/chat:v4", 0},
		{"tagged elsewhere only", "example.com/other/chat:v4", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				w.eng.addImage(tt.tag, id)
				o := w.deploy(state.KindDeploy, "example.com/team/chat@"+id)
				if o.Exit != tt.wantExit {
					t.Fatalf("deploy = %+v, want exit %d", o, tt.wantExit)
				}
				if tt.wantExit != 0 {
					if len(w.eng.creates) != 0 {
						t.Errorf("an image outside the repository was run: %+v", w.eng.creates)
					}
					return
				}
				if len(w.eng.pulls) != 0 {
					t.Errorf("pulled %v; the image is present", w.eng.pulls)
				}
				if got := w.eng.creates[0].Image; got != id {
					t.Errorf("runs %q, want the image ID", got)
				}
				if d := w.state().Active.Digest; d != id {
					t.Errorf("recorded digest %q, want %q", d, id)
				}
			})
		})
	}
}

func TestEnvFileLayering(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		path := w.cfg.StateDir + "/app.env"
		if err := os.WriteFile(path, []byte("# secrets\nA=from-file\nB=2\nAPP_COLOR=purple\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		w.cfg.App.EnvFile = path
		if o := w.deploy(state.KindDeploy, "example.com/team/chat:v1"); o.Exit != 0 {
			t.Fatalf("deploy = %+v", o)
		}
		env := w.eng.creates[0].Env
		// app.env overrides the file; the agent's own variables override both.
		for _, want := range []string{"A=1", "B=2", "APP_COLOR=blue"} {
			if !slices.Contains(env, want) {
				t.Errorf("env %v lacks %s", env, want)
			}
		}

		// A file that exists but cannot be read fails the deploy before anything starts.
		if err := os.WriteFile(path, []byte("NOT A LINE\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		o := w.deploy(state.KindDeploy, "example.com/team/chat:v2")
		if o.Exit != 1 || !strings.Contains(o.Message, "line 1 is not KEY=VALUE") || len(w.eng.creates) != 1 {
			t.Fatalf("deploy with a bad env file = %+v after %d creates; want exit 1 naming the line, nothing created", o, len(w.eng.creates))
		}
		if w.servedPort() != 8081 {
			t.Errorf("served port %d after the failed deploy, want 8081 (the old release)", w.servedPort())
		}
	})
}

// TestDeployOverSockets: with a socket folder the colors serve on <folder>/<color>.sock (mounted at
// /sockets, named by CHAT_SOCKET), the health gate probes through the socket, nginx's upstream
// names the socket, and a restarted agent that lost state.json finds the served color by it.
func TestDeployOverSockets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorldWith(t, "  socket_dir: {{dir}}/sockets/chat")
		dir := w.cfg.StateDir + "/sockets/chat"
		var probed []string
		w.d.Probe = func(ctx context.Context, u string, timeout time.Duration) (int, []byte, error) {
			probed = append(probed, u)
			return w.probe(ctx, u, timeout)
		}
		w.eng.unhealthy = false
		for _, img := range []string{"example.com/team/chat:v1", "example.com/team/chat:v2"} {
			if o := w.deploy(state.KindDeploy, img); o.Exit != 0 {
				t.Fatalf("deploy %s = %+v", img, o)
			}
		}
		spec := w.eng.creates[1]
		if !slices.Contains(spec.Env, "CHAT_SOCKET=/sockets/green.sock") || spec.Binds[dir] != "/sockets" {
			t.Errorf("green's spec: env %v binds %v; want CHAT_SOCKET=/sockets/green.sock and %s mounted at /sockets", spec.Env, spec.Binds, dir)
		}
		if got := nginx.ServedSockets([]byte(w.upstream())); len(got) != 1 || got[0] != dir+"/green.sock" {
			t.Errorf("upstream serves %q, want %s/green.sock:\n%s", got, dir, w.upstream())
		}
		if ports := nginx.ServedPorts([]byte(w.upstream())); len(ports) != 0 {
			t.Errorf("upstream also names ports %v", ports)
		}
		if !slices.Contains(probed, "unix:"+dir+"/green.sock:/healthz") || slices.Contains(probed, "http://127.0.0.1:8082/healthz") {
			t.Errorf("health probes %q: want green's socket, not its port", probed)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o711 {
			t.Errorf("socket folder %v %v, want mode 0711", fi, err)
		}

		os.Remove(w.cfg.StateDir + "/state.json")
		if err := w.d.Reconcile(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if st := w.state(); st.Active == nil || st.Active.Color != "green" {
			t.Errorf("state after adopting by socket = %+v, want green", st.Active)
		}
	})
}
