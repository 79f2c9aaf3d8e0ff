package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/authconfig"
)

// serveEngine starts answer as the engine at DOCKER_HOST, answering like a 1.41 engine, and
// returns a client for it. answer gets the path without its API version and the request's body.
func serveEngine(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, path string, body []byte)) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		path := r.URL.Path
		if i := strings.Index(path[1:], "/"); strings.HasPrefix(path, "/v1.") && i > 0 {
			path = path[i+1:]
		}
		b, _ := io.ReadAll(r.Body)
		answer(w, r, path, b)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("DOCKER_HOST", "tcp://"+strings.TrimPrefix(srv.URL, "http://"))
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fakeEngine answers the few Engine API calls under test like a 1.41 engine and records bodies.
func fakeEngine(t *testing.T) (*Client, map[string][]byte) {
	t.Helper()
	bodies := map[string][]byte{}
	c := serveEngine(t, func(w http.ResponseWriter, r *http.Request, path string, b []byte) {
		bodies[r.Method+" "+path] = b
		switch {
		case path == "/_ping":
			w.Write([]byte("OK"))
		case path == "/containers/create":
			if r.URL.Query().Get("name") != "app-blue" {
				http.Error(w, `{"message":"bad name"}`, 400)
				return
			}
			w.Write([]byte(`{"Id":"abc123","Warnings":[]}`))
		case strings.HasPrefix(path, "/images/") && strings.HasSuffix(path, "/json"):
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"No such image"}`))
		case path == "/networks/chatnet":
			// Missing until created, like a fresh host.
			if _, made := bodies["POST /networks/create"]; !made {
				w.WriteHeader(http.StatusNotFound)
				w.Write([]byte(`{"message":"network chatnet not found"}`))
				return
			}
			w.Write([]byte(`{"Name":"chatnet","Driver":"bridge"}`))
		case path == "/networks/create":
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"Id":"n1"}`))
		case path == "/containers/app-blue/kill":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, `{"message":"unexpected `+path+`"}`, 500)
		}
	})
	return c, bodies
}

func TestCreateContainerIsHardened(t *testing.T) {
	c, bodies := fakeEngine(t)
	id, err := c.CreateContainer(context.Background(), Spec{
		Name: "app-blue", Image: "sha256:1111", Labels: map[string]string{"mywebchat.color": "blue"},
		Env: []string{"APP_COLOR=blue"}, HostPort: 8081, ContainerPort: 8080, MemoryBytes: 256 << 20,
		Binds: map[string]string{"/var/lib/x/handover/app": "/handover"}, StopTimeout: 30 * time.Second,
	})
	if err != nil || id != "abc123" {
		t.Fatalf("CreateContainer = %q, %v", id, err)
	}
	var req struct {
		Image       string
		Env         []string
		Labels      map[string]string
		StopTimeout int
		HostConfig  struct {
			ReadonlyRootfs bool
			CapDrop        []string
			SecurityOpt    []string
			Tmpfs          map[string]string
			Memory         int64
			RestartPolicy  struct{ Name string }
			PortBindings   map[string][]struct{ HostIp, HostPort string }
			Mounts         []struct{ Type, Source, Target string }
		}
	}
	if err := json.Unmarshal(bodies["POST /containers/create"], &req); err != nil {
		t.Fatal(err)
	}
	hc := req.HostConfig
	checks := []struct {
		name string
		ok   bool
	}{
		{"image by ID", req.Image == "sha256:1111"},
		{"read-only root", hc.ReadonlyRootfs},
		{"cap-drop ALL", len(hc.CapDrop) == 1 && hc.CapDrop[0] == "ALL"},
		{"no-new-privileges", len(hc.SecurityOpt) == 1 && hc.SecurityOpt[0] == "no-new-privileges"},
		{"tmpfs /tmp", hc.Tmpfs["/tmp"] != ""},
		{"memory", hc.Memory == 256<<20},
		{"restart unless-stopped", hc.RestartPolicy.Name == "unless-stopped"},
		{"published on loopback", len(hc.PortBindings["8080/tcp"]) == 1 && hc.PortBindings["8080/tcp"][0].HostIp == "127.0.0.1" && hc.PortBindings["8080/tcp"][0].HostPort == "8081"},
		{"handover bind", len(hc.Mounts) == 1 && hc.Mounts[0].Type == "bind" && hc.Mounts[0].Target == "/handover"},
		{"stop timeout", req.StopTimeout == 30},
		{"labels", req.Labels["mywebchat.color"] == "blue"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not set in %s", c.name, bodies["POST /containers/create"])
		}
	}
}

func TestCreateContainerJoinsNetwork(t *testing.T) {
	c, bodies := fakeEngine(t)
	if _, err := c.CreateContainer(context.Background(), Spec{
		Name: "app-blue", Image: "sha256:1111", HostPort: 8081, ContainerPort: 8080, Network: "chatnet",
	}); err != nil {
		t.Fatal(err)
	}
	var netReq struct {
		Name, Driver string
		Labels       map[string]string
	}
	if err := json.Unmarshal(bodies["POST /networks/create"], &netReq); err != nil {
		t.Fatalf("network not created: %v (%s)", err, bodies["POST /networks/create"])
	}
	if netReq.Name != "chatnet" || netReq.Driver != "bridge" || netReq.Labels["mywebchat.created-by"] != "deploy-agent" {
		t.Errorf("network create = %+v, want bridge chatnet labelled as the agent's", netReq)
	}
	var req struct{ HostConfig struct{ NetworkMode string } }
	if err := json.Unmarshal(bodies["POST /containers/create"], &req); err != nil {
		t.Fatal(err)
	}
	if req.HostConfig.NetworkMode != "chatnet" {
		t.Errorf("NetworkMode = %q, want chatnet", req.HostConfig.NetworkMode)
	}

	// Existing now: used as it is, not created again.
	delete(bodies, "POST /containers/create")
	bodies["POST /networks/create"] = []byte("seen")
	if _, err := c.CreateContainer(context.Background(), Spec{
		Name: "app-blue", Image: "sha256:1111", HostPort: 8081, ContainerPort: 8080, Network: "chatnet",
	}); err != nil {
		t.Fatal(err)
	}
	if string(bodies["POST /networks/create"]) != "seen" {
		t.Error("an existing network was created again")
	}
}

func TestErrorsAreTyped(t *testing.T) {
	c, _ := fakeEngine(t)
	if _, err := c.InspectImage(context.Background(), "example.com/x:v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("InspectImage(missing) = %v, want ErrNotFound", err)
	}
	if err := c.Signal(context.Background(), "app-blue", "HUP"); err != nil {
		t.Errorf("Signal = %v", err)
	}
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "none.sock"))
	dead, _ := New()
	if _, err := dead.Ping(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Ping(no engine) = %v, want ErrUnreachable", err)
	}
}

func TestRegistryAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	basic := base64.StdEncoding.EncodeToString([]byte("bot:s3cret-token"))
	tests := []struct {
		name, path, host, wantUser, wantErr string
	}{
		{"docker config", write("config.json", `{"auths":{"ghcr.io":{"auth":"`+basic+`"}}}`), "ghcr.io", "bot", ""},
		{"docker config other host", filepath.Join(dir, "config.json"), "quay.io", "", ""},
		{"single object", write("single.json", `{"username":"u","password":"p"}`), "ghcr.io", "u", ""},
		{"missing file", filepath.Join(dir, "none.json"), "ghcr.io", "", ""},
		{"not json", write("bad.json", `s3cret-token`), "ghcr.io", "", "not valid JSON"},
		{"bad auth", write("badauth.json", `{"auths":{"ghcr.io":{"auth":"s3cret-token!"}}}`), "ghcr.io", "", "not base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := RegistryAuth(tt.path, tt.host)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("err = %v, want %q and no secret in it", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantUser == "" {
				if enc != "" {
					t.Errorf("auth = %q, want anonymous", enc)
				}
				return
			}
			ac, err := authconfig.Decode(enc)
			if err != nil || ac.Username != tt.wantUser || ac.ServerAddress != tt.host {
				t.Errorf("decoded = %+v, %v", ac, err)
			}
		})
	}
}

func TestContainerEvents(t *testing.T) {
	var filters string
	c := serveEngine(t, func(w http.ResponseWriter, r *http.Request, path string, _ []byte) {
		if path == "/_ping" {
			w.Write([]byte("OK"))
			return
		}
		if path != "/events" {
			http.Error(w, `{"message":"unexpected"}`, 500)
			return
		}
		filters = r.URL.Query().Get("filters")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"name":"app-blue","exitCode":"137"}},"timeNano":1700000000000000000}` + "\n"))
		w.Write([]byte(`{"Type":"container","Action":"destroy","Actor":{"ID":"abc","Attributes":{"name":"app-blue"}}}` + "\n"))
		// The body ends here, as when the engine restarts.
	})

	evs, errc, err := c.ContainerEvents(t.Context(), map[string]string{"mywebchat.app": "app"}, "die", "destroy")
	if err != nil {
		t.Fatal(err)
	}
	var got []ContainerEvent
	for ev := range evs {
		got = append(got, ev)
	}
	want := []ContainerEvent{
		{ID: "abc", Name: "app-blue", Action: "die", Time: time.Unix(0, 1700000000000000000)},
		{ID: "abc", Name: "app-blue", Action: "destroy"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].ID != want[i].ID || got[i].Name != want[i].Name || got[i].Action != want[i].Action || !got[i].Time.Equal(want[i].Time) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if err := <-errc; !errors.Is(err, io.EOF) {
		t.Errorf("stream end error = %v, want io.EOF", err)
	}
	for _, f := range []string{`"type":{"container":true}`, `"label":{"mywebchat.app=app":true}`, `"die":true`, `"destroy":true`} {
		if !strings.Contains(filters, f) {
			t.Errorf("filters %s lack %s", filters, f)
		}
	}
}

func TestContainerEventsSubscribeFails(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1")
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, _, err := c.ContainerEvents(t.Context(), nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("subscribe to a closed port: err = %v, want ErrUnreachable", err)
	}
}

// TestRegistryAuthCredentialHelper runs a stand-in docker-credential helper that answers from a
// file, the way the host's helper answers from Parameter Store: each call reads it again, so a
// rotated token is used by the next pull.
func TestRegistryAuthCredentialHelper(t *testing.T) {
	bin := t.TempDir()
	store := filepath.Join(t.TempDir(), "token")
	helper := `#!/bin/sh
[ "$1" = get ] || exit 2
read -r host
echo "$host" >>"` + store + `.hosts"
case "$host" in
ghcr.io) ;;
*) echo "credentials not found in native keychain"; exit 1 ;;
esac
tok=$(cat "` + store + `") || { echo "parameter unreadable" >&2; exit 1; }
case "$tok" in
garbage) echo "$tok"; exit 0 ;;
esac
printf '{"ServerURL":"%s","Username":"bot","Secret":"%s"}\n' "$host" "$tok"
`
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-teststore"), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.json")
	os.WriteFile(cfg, []byte(`{"credHelpers":{"ghcr.io":"teststore","quay.io":"teststore","x.io":"../../bin/sh","y.io":"absent"},"auths":{"ghcr.io":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("old:stored-token"))+`"}}}`), 0o600)

	password := func(host string) string {
		t.Helper()
		enc, err := RegistryAuth(cfg, host)
		if err != nil {
			t.Fatalf("RegistryAuth(%s): %v", host, err)
		}
		if enc == "" {
			return ""
		}
		ac, err := authconfig.Decode(enc)
		if err != nil || ac.Username != "bot" || ac.ServerAddress != host {
			t.Fatalf("decoded = %+v, %v", ac, err)
		}
		return ac.Password
	}
	os.WriteFile(store, []byte("s3cret-one"), 0o600)
	if got := password("ghcr.io"); got != "s3cret-one" {
		t.Errorf("first pull: password %q, want the helper's s3cret-one (a helper wins over auths)", got)
	}
	os.WriteFile(store, []byte("s3cret-two"), 0o600) // the rotation: nothing on the host changes
	if got := password("ghcr.io"); got != "s3cret-two" {
		t.Errorf("after rotation: password %q, want s3cret-two", got)
	}
	if hosts, _ := os.ReadFile(store + ".hosts"); string(hosts) != "ghcr.io\nghcr.io\n" {
		t.Errorf("helper got hosts %q on stdin, want ghcr.io twice", hosts)
	}
	if got := password("quay.io"); got != "" {
		t.Errorf("helper's not found: password %q, want an anonymous pull", got)
	}

	for _, tt := range []struct{ name, host, token, wantErr string }{
		{"helper fails", "ghcr.io", "", "parameter unreadable"},
		{"helper answers garbage", "ghcr.io", "garbage", "is not {"},
		{"helper name is a path", "x.io", "s3cret-one", "not a credential helper name"},
		{"helper missing", "y.io", "s3cret-one", "docker-credential-absent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.token == "" {
				os.Remove(store)
			} else {
				os.WriteFile(store, []byte(tt.token), 0o600)
			}
			_, err := RegistryAuth(cfg, tt.host)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("err = %v, want %q and no secret in it", err, tt.wantErr)
			}
		})
	}
}
