package deploy

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/nginx"
	"github.com/mywebchat/mywebchat/agent/internal/state"
	nginxtemplates "github.com/mywebchat/mywebchat/nginx-templates"
)

// fakeContainer is one container of fakeEngine.
type fakeContainer struct {
	docker.Container
	spec docker.Spec
	// healthy says whether /healthz answers 200 while running.
	healthy bool
}

// fakeEngine is a stateful in-memory engine: images by reference and ID, containers by name.
// Knobs make the next created containers unhealthy or crash, or make calls fail.
type fakeEngine struct {
	mu         sync.Mutex
	images     map[string]docker.Image
	registry   map[string]docker.Image // what a pull would fetch
	containers map[string]*fakeContainer
	seq        int

	unhealthy, crash bool
	failCreate       error
	failStop         error
	logs             string

	pulls   []string
	auths   []string
	creates []docker.Spec
	starts  []string
	stops   []string
	stopAt  []time.Time // when each of stops happened
	// stopTook is how long a stop takes: the container's process moves its connections and
	// exits meanwhile. stopDone records when each stop returned.
	stopTook time.Duration
	stopDone []time.Time
	removes  []string
	rmi      []string
	gives    []string // "uid:gid path…" per GiveFolders call
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{images: map[string]docker.Image{}, registry: map[string]docker.Image{}, containers: map[string]*fakeContainer{}}
}

func (f *fakeEngine) addImage(ref, id string) {
	img := docker.Image{ID: id, RepoTags: []string{ref}, User: "65532:65532"}
	f.images[ref], f.images[id] = img, img
}

func (f *fakeEngine) InspectImage(_ context.Context, ref string) (docker.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img, ok := f.images[ref]; ok {
		return img, nil
	}
	return docker.Image{}, fmt.Errorf("inspect %s: %w", ref, docker.ErrNotFound)
}

func (f *fakeEngine) PullImage(_ context.Context, ref, auth string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls, f.auths = append(f.pulls, ref), append(f.auths, auth)
	img, ok := f.registry[ref]
	if !ok {
		return fmt.Errorf("pull %s: manifest unknown", ref)
	}
	f.images[ref], f.images[img.ID] = img, img
	return nil
}

func (f *fakeEngine) byID(id string) *fakeContainer {
	for _, c := range f.containers {
		if c.ID == id || c.Name == id {
			return c
		}
	}
	return nil
}

func (f *fakeEngine) CreateContainer(_ context.Context, s docker.Spec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failCreate != nil {
		return "", f.failCreate
	}
	if _, ok := f.containers[s.Name]; ok {
		return "", fmt.Errorf("create %s: name in use", s.Name)
	}
	f.seq++
	imgID := s.Image
	if img, ok := f.images[s.Image]; ok {
		imgID = img.ID
	}
	c := &fakeContainer{Container: docker.Container{ID: "c" + strconv.Itoa(f.seq), Name: s.Name, ImageID: imgID, Labels: s.Labels, State: "created"}, spec: s, healthy: !f.unhealthy}
	f.containers[s.Name] = c
	f.creates = append(f.creates, s)
	return c.ID, nil
}

func (f *fakeEngine) StartContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.byID(id)
	if c == nil {
		return fmt.Errorf("start %s: %w", id, docker.ErrNotFound)
	}
	f.starts = append(f.starts, c.Name)
	c.Running, c.State = true, "running"
	if f.crash {
		c.Running, c.State, c.ExitCode = false, "exited", 3
	}
	return nil
}

func (f *fakeEngine) RemoveContainer(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.byID(id); c != nil {
		delete(f.containers, c.Name)
		f.removes = append(f.removes, c.Name)
	}
	return nil
}

// GiveFolders does what the engine does, as root: chown and chmod each folder.
func (f *fakeEngine) GiveFolders(_ context.Context, _, image string, uid, gid int, folders []docker.Folder) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.images[image]; !ok {
		return fmt.Errorf("give folders: image %s: %w", image, docker.ErrNotFound)
	}
	call := strconv.Itoa(uid) + ":" + strconv.Itoa(gid)
	for _, d := range folders {
		if err := os.Chown(d.Path, uid, gid); err != nil {
			return err
		}
		if err := os.Chmod(d.Path, d.Mode); err != nil {
			return err
		}
		call += " " + d.Path
	}
	f.gives = append(f.gives, call)
	return nil
}

func (f *fakeEngine) StopContainer(_ context.Context, id string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.byID(id)
	if c == nil {
		return fmt.Errorf("stop %s: %w", id, docker.ErrNotFound)
	}
	f.stops = append(f.stops, c.Name)
	f.stopAt = append(f.stopAt, time.Now())
	if f.stopTook > 0 {
		f.mu.Unlock()
		time.Sleep(f.stopTook)
		f.mu.Lock()
	}
	f.stopDone = append(f.stopDone, time.Now())
	if f.failStop != nil {
		return f.failStop
	}
	c.Running, c.State = false, "exited"
	return nil
}

func (f *fakeEngine) InspectContainer(_ context.Context, name string) (docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.byID(name); c != nil {
		return c.Container, nil
	}
	return docker.Container{}, fmt.Errorf("inspect %s: %w", name, docker.ErrNotFound)
}

func (f *fakeEngine) ListContainers(_ context.Context, labels map[string]string) ([]docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []docker.Container
	for _, c := range f.containers {
		match := true
		for k, v := range labels {
			match = match && c.Labels[k] == v
		}
		if match {
			out = append(out, c.Container)
		}
	}
	return out, nil
}

func (f *fakeEngine) Logs(context.Context, string, int) (string, error) { return f.logs, nil }

func (f *fakeEngine) RemoveImage(_ context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[ref]
	if !ok {
		return fmt.Errorf("remove image %s: %w", ref, docker.ErrNotFound)
	}
	for _, c := range f.containers {
		if c.ImageID == img.ID {
			return fmt.Errorf("remove image %s: in use by %s", ref, c.Name)
		}
	}
	delete(f.images, ref)
	img.RepoTags = slices.DeleteFunc(img.RepoTags, func(t string) bool { return t == ref })
	if len(img.RepoTags) == 0 {
		for k, i := range f.images {
			if i.ID == img.ID {
				delete(f.images, k)
			}
		}
		f.rmi = append(f.rmi, img.ID)
	} else {
		for k, i := range f.images {
			if i.ID == img.ID {
				f.images[k] = img
			}
		}
	}
	return nil
}

// world wires a Deployer on fakes: nginx is a real Controller whose test rejects files containing
// BROKEN, and check_url answers like nginx would, from the container the upstream file points at.
type world struct {
	t       *testing.T
	cfg     config.Config
	eng     *fakeEngine
	d       *Deployer
	nginxMu sync.Mutex // guards reloads and loaded: a test may look while a deploy runs
	reloads int
	// loaded is the upstream nginx read at its last reload: nginx reads its files only when
	// told, so check_url answers from this, not from the file. Before any reload nginx serves
	// the file as it is (as if it had just started with it).
	loaded []byte
	// verifyColor, when set, is what check_url reports whatever nginx points at.
	verifyColor string
	events      []string
	outcomes    []Outcome
}

func newWorld(t *testing.T) *world { return newWorldWith(t, "") }

// newWorldWith is newWorld with extra lines in the app section of the config.
func newWorldWith(t *testing.T, appExtra string) *world {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
state_dir: %s
app:
  name: chat
  repository: example.com/team/chat
  colors: {blue: {port: 8081}, green: {port: 8082}}
  env: {A: "1"}
  health: {interval: 100ms, timeout: 1s, healthy_after: 2, start_timeout: 3s}
  drain_timeout: 5s
  verify: 2s
  keep_releases: 2
%s
proxy:
  mode: host
  output: %s/nginx/upstream.conf
  check_url: http://127.0.0.1:80/healthz
`, dir, strings.ReplaceAll(appExtra, "{{dir}}", dir), dir)))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, cfg: cfg, eng: newFakeEngine()}
	w.eng.addImage("example.com/team/chat:v1", "sha256:1111")
	w.eng.addImage("example.com/team/chat:v2", "sha256:2222")
	proxy := &nginx.Controller{
		Output: cfg.Proxy.Output,
		Test: func(context.Context) error {
			b, _ := os.ReadFile(cfg.Proxy.Output)
			if strings.Contains(string(b), "BROKEN") {
				return errors.New("nginx: [emerg] unknown directive BROKEN")
			}
			return nil
		},
		Reload: func(context.Context) error {
			b, _ := os.ReadFile(cfg.Proxy.Output)
			w.nginxMu.Lock()
			defer w.nginxMu.Unlock()
			w.reloads++
			w.loaded = b
			return nil
		},
	}
	w.d = &Deployer{
		Cfg: &w.cfg, Engine: w.eng, Proxy: proxy, Store: state.Store{Dir: dir},
		Render: func(s nginx.Site) ([]byte, error) { return nginx.Render(nginxtemplates.FS, nginxtemplates.Upstream, s) },
		Probe:  w.probe,
	}
	return w
}

// probe answers health checks from the fake containers by port, and check_url like nginx.
func (w *world) probe(_ context.Context, raw string, _ time.Duration) (int, []byte, error) {
	u, _ := url.Parse(raw)
	port, _ := strconv.Atoi(u.Port())
	color := w.cfg.ColorOfPort(port)
	if rest, ok := strings.CutPrefix(raw, "unix:"); ok {
		sock, _, _ := strings.Cut(rest, ".sock:")
		color = w.cfg.ColorOfSocket(sock + ".sock")
	}
	if raw == w.cfg.Proxy.CheckURL {
		if w.verifyColor != "" {
			return 200, []byte(`{"status":"ok","color":"` + w.verifyColor + `"}`), nil
		}
		b := w.served()
		ports, socks := nginx.ServedPorts(b), nginx.ServedSockets(b)
		switch {
		case len(socks) > 0:
			color = w.cfg.ColorOfSocket(socks[0])
		case len(ports) > 0:
			color = w.cfg.ColorOfPort(ports[0])
		default:
			return 502, nil, nil
		}
	}
	w.eng.mu.Lock()
	c := w.eng.containers[w.cfg.ContainerName(color)]
	w.eng.mu.Unlock()
	if c == nil || !c.Running {
		return 0, nil, errors.New("connection refused")
	}
	if !c.healthy {
		return 503, []byte("starting"), nil
	}
	return 200, []byte(`{"status":"ok","color":"` + color + `"}`), nil
}

func (w *world) deploy(kind, image string) Outcome {
	w.t.Helper()
	id := fmt.Sprintf("20261123T0500%02dZ-0000000%d", len(w.outcomes), len(w.outcomes))
	o := w.d.Deploy(context.Background(), nil, Request{ID: id, Kind: kind, Image: image}, Hooks{
		Event: func(step, status, detail string) { w.events = append(w.events, step+":"+status) },
		Done:  func(o Outcome) { w.outcomes = append(w.outcomes, o) },
	})
	if p, _ := w.d.Store.LoadProgress(); p != nil {
		w.t.Errorf("progress.json left after the deploy ended: %+v", p)
	}
	if len(w.outcomes) == 0 || w.outcomes[len(w.outcomes)-1].ID != id {
		w.t.Errorf("Done hook not called for %s", id)
	}
	return o
}

func (w *world) upstream() string {
	b, _ := os.ReadFile(w.cfg.Proxy.Output)
	return string(b)
}

// served is the upstream nginx serves from: what it read at its last reload.
func (w *world) served() []byte {
	w.nginxMu.Lock()
	defer w.nginxMu.Unlock()
	if w.reloads == 0 {
		return []byte(w.upstream())
	}
	return w.loaded
}

func (w *world) servedPort() int {
	ports := nginx.ServedPorts(w.served())
	if len(ports) == 0 {
		return 0
	}
	return ports[0]
}

func (w *world) state() state.State {
	st, err := w.d.Store.Load()
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

func (w *world) running(name string) bool {
	c, ok := w.eng.containers[name]
	return ok && c.Running
}

var _ = filepath.Join
