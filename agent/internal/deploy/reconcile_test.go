package deploy

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// crashAt runs a deploy of v2 whose process "dies" as step starts: the hook panics, which stops the
// deploy where a SIGKILL would, leaving progress.json and the engine as they were.
func crashAt(t *testing.T, w *world, step string) {
	t.Helper()
	type crash struct{}
	func() {
		defer func() {
			if r := recover(); r != nil && r != (crash{}) {
				panic(r)
			}
		}()
		w.d.Deploy(context.Background(), nil, Request{ID: "20261123T050000Z-cccccccc", Kind: state.KindDeploy, Image: "example.com/team/chat:v2"}, Hooks{
			Event: func(s, status, _ string) {
				if s == step && status == "started" {
					panic(crash{})
				}
			},
		})
	}()
	if p, _ := w.d.Store.LoadProgress(); p == nil || p.Step != step {
		t.Fatalf("after crash at %s: progress = %+v", step, p)
	}
}

func TestReconcileAfterCrashAtEachStep(t *testing.T) {
	// Before the switch the deploy is undone; once nginx serves the healthy new color it is finished.
	forward := map[string]bool{StepVerify: true, StepDrain: true, StepRecord: true}
	for _, step := range Steps {
		t.Run(step, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				w.deploy(state.KindDeploy, "example.com/team/chat:v1")
				crashAt(t, w, step)
				var got []Outcome
				if err := w.d.Reconcile(context.Background(), func(o Outcome) { got = append(got, o) }); err != nil {
					t.Fatal(err)
				}
				if p, _ := w.d.Store.LoadProgress(); p != nil {
					t.Errorf("progress.json survived reconcile")
				}
				if len(got) != 1 {
					t.Fatalf("outcomes = %+v, want one for the crashed deploy", got)
				}
				wantColor, wantPort := "blue", 8081
				if forward[step] {
					wantColor, wantPort = "green", 8082
					if got[0].Exit != 0 {
						t.Errorf("outcome = %+v, want finished", got[0])
					}
				} else if got[0].Exit != 1 {
					t.Errorf("outcome = %+v, want undone", got[0])
				}
				st := w.state()
				if st.Active.Color != wantColor || w.servedPort() != wantPort || !w.running("chat-"+wantColor) {
					t.Errorf("active %s served %d running %v, want %s", st.Active.Color, w.servedPort(), w.running("chat-"+wantColor), wantColor)
				}
				other := "chat-green"
				if wantColor == "green" {
					other = "chat-blue"
				}
				if w.running(other) {
					t.Errorf("%s still running: two colors after reconcile", other)
				}
				recs, _ := w.d.Store.History(1)
				if n := len(recs[0].Steps); n == 0 || recs[0].Steps[n-1].Name != StepReconcile {
					t.Errorf("journal record lacks the reconcile step: %+v", recs[0].Steps)
				}
			})
		})
	}
}

func TestReconcileRestartsDeadActive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		w.eng.StopContainer(context.Background(), "chat-blue", 0)
		if err := w.d.Reconcile(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if !w.running("chat-blue") {
			t.Error("dead active color not restarted")
		}
		// A vanished active container is recreated from the pinned image.
		w.eng.RemoveContainer(context.Background(), "chat-blue")
		if err := w.d.Reconcile(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if !w.running("chat-blue") || w.eng.creates[len(w.eng.creates)-1].Image != "sha256:1111" {
			t.Error("vanished active color not recreated from its image")
		}
	})
}

func TestReconcileFallsBackToHealthyPrevious(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		w.deploy(state.KindDeploy, "example.com/team/chat:v2")
		w.eng.containers["chat-green"].healthy = false
		if err := w.d.Reconcile(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		st := w.state()
		if st.Active.Color != "blue" || w.servedPort() != 8081 || !w.running("chat-blue") {
			t.Errorf("active %s served %d: want nginx back on the healthy previous color", st.Active.Color, w.servedPort())
		}
	})
}

func TestReconcileFreshHostWritesPlaceholder(t *testing.T) {
	w := newWorld(t)
	if err := w.d.Reconcile(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.upstream(), "upstream chat") || w.servedPort() != 1 {
		t.Errorf("placeholder upstream = %q", w.upstream())
	}
	if w.reloads != 1 {
		t.Errorf("reloads = %d, want one (best effort) after writing the first file", w.reloads)
	}
	if err := w.d.Reconcile(context.Background(), nil); err != nil || w.reloads != 1 {
		t.Errorf("second reconcile reloaded again (%d) or failed: %v", w.reloads, err)
	}
}

func TestReconcileAdoptsServedContainerWhenStateIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		os.Remove(w.cfg.StateDir + "/state.json")
		if err := w.d.Reconcile(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if st := w.state(); st.Active == nil || st.Active.Color != "blue" || st.Active.ImageID != "sha256:1111" {
			t.Errorf("state after adopt = %+v", st.Active)
		}
	})
}

func TestPruneKeepsReleasesAndImagesInUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.cfg.App.KeepReleases = 1
		w.eng.addImage("example.com/team/chat:v3", "sha256:3333")
		w.eng.addImage("example.com/team/chat:v4", "sha256:4444")
		w.eng.addImage("example.com/team/chat:handmade", "sha256:9999")
		// v1 is also tagged by someone else: pruning removes our tag only, the image stays.
		v1 := w.eng.images["sha256:1111"]
		v1.RepoTags = append(v1.RepoTags, "other/tool:latest")
		for _, k := range []string{"sha256:1111", "example.com/team/chat:v1", "other/tool:latest"} {
			w.eng.images[k] = v1
		}
		for _, v := range []string{"v1", "v2", "v3", "v4"} {
			if o := w.deploy(state.KindDeploy, "example.com/team/chat:"+v); o.Exit != 0 {
				t.Fatal(o)
			}
		}
		// v4 active (green), v3 previous (blue, stopped container): both in use, v1 and v2 pruned.
		slices.Sort(w.eng.rmi)
		if !slices.Equal(w.eng.rmi, []string{"sha256:2222"}) {
			t.Errorf("removed images = %v, want v2 only", w.eng.rmi)
		}
		if _, ok := w.eng.images["example.com/team/chat:v1"]; ok {
			t.Error("v1's tag in our repository survived pruning")
		}
		if _, ok := w.eng.images["sha256:9999"]; !ok {
			t.Error("an image this agent never deployed was pruned")
		}
		if st := w.state(); st.Active.ImageID != "sha256:4444" || st.Previous.ImageID != "sha256:3333" {
			t.Errorf("state = %+v / %+v", st.Active, st.Previous)
		}
		_ = state.Succeeded
	})
}

func TestStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		w.deploy(state.KindDeploy, "example.com/team/chat:v2")
		st, err := (&StatusReader{Cfg: &w.cfg, Containers: w.eng, Upstream: w.d.Proxy.Current, Store: w.d.Store, Probe: w.probe}).Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Active == nil || st.Active.Color != "green" || !st.Active.Healthy || st.Active.Port != 8082 || st.Served != "green" {
			t.Errorf("active = %+v served %q", st.Active, st.Served)
		}
		if st.Previous == nil || st.Previous.Healthy || st.Previous.State != "exited" || st.Deploying != nil {
			t.Errorf("previous = %+v deploying %+v", st.Previous, st.Deploying)
		}
	})
}

// TestReconcileAfterCrashDuringHealthGate: the agent dies while the health gate runs, after the
// switch was staged (the upstream file already names the new color, nginx never read it). The
// restarted agent undoes the deploy at once: it does not wait for the new color through nginx,
// which would never answer from it. Meanwhile status reports the color nginx really serves.
func TestReconcileAfterCrashDuringHealthGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		w.deploy(state.KindDeploy, "example.com/team/chat:v1")
		type crash struct{}
		healthProbes, checks := 0, 0
		w.d.Probe = func(ctx context.Context, u string, timeout time.Duration) (int, []byte, error) {
			if u == w.cfg.Proxy.CheckURL {
				checks++
			} else if healthProbes++; healthProbes == 2 {
				panic(crash{}) // the first 200 came an interval ago: staging is done
			}
			return w.probe(ctx, u, timeout)
		}
		func() {
			defer func() {
				if r := recover(); r != nil && r != (crash{}) {
					panic(r)
				}
			}()
			w.d.Deploy(context.Background(), nil, Request{ID: "20261123T050000Z-eeeeeeee", Kind: state.KindDeploy, Image: "example.com/team/chat:v2"}, Hooks{})
		}()
		if !strings.Contains(w.upstream(), "8082") || w.servedPort() != 8081 {
			t.Fatalf("before the restart: upstream file %q, nginx serves %d; want the switch staged for green, nginx on blue", w.upstream(), w.servedPort())
		}
		st, err := (&StatusReader{Cfg: &w.cfg, Containers: w.eng, Upstream: w.d.Proxy.Current, Store: w.d.Store, Probe: w.probe}).Status(context.Background())
		if err != nil || st.Served != "blue" || st.Deploying == nil || st.Deploying.Step != StepHealth {
			t.Errorf("status before the restart: served %q deploying %+v (%v); want blue served, the deploy at %s", st.Served, st.Deploying, err, StepHealth)
		}
		var got []Outcome
		start := time.Now()
		if err := w.d.Reconcile(context.Background(), func(o Outcome) { got = append(got, o) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Exit != 1 || got[0].Result != state.Failed {
			t.Fatalf("outcomes = %+v, want the deploy undone", got)
		}
		if checks != 0 || time.Since(start) >= w.cfg.App.Verify.D() {
			t.Errorf("reconcile asked nginx %d times and took %s: it waited for a color nginx was never told about", checks, time.Since(start))
		}
		if st := w.state(); st.Active.Color != "blue" || w.servedPort() != 8081 || !strings.Contains(w.upstream(), "8081") || w.running("chat-green") {
			t.Errorf("active %s, nginx serves %d, upstream %q, green running %v; want blue alone", st.Active.Color, w.servedPort(), w.upstream(), w.running("chat-green"))
		}
	})
}
