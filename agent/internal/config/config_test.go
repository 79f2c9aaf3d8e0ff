package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// exampleConfig is the example shipped in deploy/, which must always parse strictly.
func exampleConfig(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "agent.yaml")
}

func TestExampleConfigParsesStrictly(t *testing.T) {
	c, err := Load(exampleConfig(t))
	if err != nil {
		t.Fatalf("Load(example) = %v", err)
	}
	if got, want := c.App.Health.Interval.D(), 500*time.Millisecond; got != want {
		t.Errorf("health.interval = %v, want %v", got, want)
	}
	if got, want := c.Port("green"), 8082; got != want {
		t.Errorf("green port = %d, want %d", got, want)
	}
	if got, want := c.Proxy.ReloadCommand, []string{"nginx", "-s", "reload"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("reload_command = %q, want %q", got, want)
	}
	if c.App.Env["CHAT_REDIS_URL"] == "" || c.Registry.AuthFile == "" || c.App.KeepReleases != 3 {
		t.Errorf("example values not loaded: %+v", c)
	}
}

func TestParseErrors(t *testing.T) {
	base := "app:\n  repository: example.com/a/b\n"
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown top key", base + "bogus: 1\n", []string{"line 3", "unknown key bogus"}},
		{"unknown nested key", "app:\n  repository: example.com/a/b\n  helth: {}\n", []string{"line 3", "unknown key helth"}},
		{"bad duration", base + "  drain_timeout: soon\n", []string{"line 3", `"soon" is not a duration`}},
		{"missing repository", "app:\n  name: x\n", []string{"app.repository: must be set"}},
		{"repository with tag", "app:\n  repository: example.com/a:1\n", []string{"not an image repository"}},
		{"same ports", base + "  colors: {blue: {port: 1}, green: {port: 1}}\n", []string{"different ports"}},
		{"third color", base + "  colors: {blue: {port: 1}, red: {port: 2}}\n", []string{`unknown color "red"`}},
		{"bad mode", base + "proxy: {mode: sidecar}\n", []string{"proxy.mode"}},
		{"relative state dir", "state_dir: var\n" + base, []string{"state_dir"}},
		{"bad env key", base + "  env: {\"A B\": x}\n", []string{"not a variable name"}},
		{"reserved env", base + "  env: {APP_COLOR: x}\n", []string{"set by the agent"}},
		{"bad memory", base + "  memory: lots\n", []string{"app.memory"}},
		{"host network", base + "  network: host\n", []string{"app.network", "cannot publish"}},
		{"bad network name", base + "  network: \"my net\"\n", []string{"app.network", "not a Docker network name"}},
		{"healthy_after zero", base + "  health: {healthy_after: 0}\n", []string{"healthy_after"}},
		{"bad check url", base + "proxy: {check_url: 'ftp://x'}\n", []string{"check_url"}},
		{"host mode without commands", base + "proxy: {mode: host, test_command: []}\n", []string{"test_command"}},
		{"empty", "", []string{"empty"}},
		{"relative socket dir", base + "  socket_dir: run/chat\n", []string{"line 3: app.socket_dir: "}},
		{"socket dir with a space", base + "  socket_dir: \"/run/my chat\"\n", []string{"app.socket_dir: ", "without spaces"}},
		{"socket dir too long", base + "  socket_dir: /" + strings.Repeat("d", 100) + "\n", []string{"app.socket_dir: ", "too long"}},
		{"state dir too long for sockets", "state_dir: /" + strings.Repeat("s", 90) + "\n" + base, []string{"state_dir: ", "set app.socket_dir"}},
		{"reserved socket env", base + "  env: {CHAT_SOCKET: /x.sock}\n", []string{"set by the agent"}},
		// Every error names the key and its line (docs/config.md: validate on a bad config).
		{"bad duration names key", base + "  drain_timeout: soon\n", []string{"line 3: app.drain_timeout: "}},
		{"bad flow duration names key", base + "  health: {path: /healthz, interval: fast}\n", []string{"line 3: app.health.interval: "}},
		{"bad int names key", base + "  keep_releases: abc\n", []string{"line 3: app.keep_releases: "}},
		{"unknown key names path", base + "  bogus_key: 1\n", []string{"line 3: app.bogus_key: unknown key bogus_key"}},
		{"invalid value names line", base + "  container_port: 0\n", []string{"line 3: app.container_port: 0 is not a port"}},
		{"nested invalid value names line", base + "  colors:\n    blue: {port: 1}\n    green: {port: 70000}\n", []string{"line 5: app.colors.green.port: "}},
		{"absent key names its parent's line", "state_dir: /x\napp:\n  name: x\n", []string{"line 2: app.repository: must be set"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	c, err := Parse([]byte("app:\n  repository: mywebchat/app\n  memory: 256m\n  colors: {blue: {port: 9001}, green: {port: 9002}}\nproxy: {mode: host}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.App.MemoryBytes != 256<<20 {
		t.Errorf("memory = %d, want %d", c.App.MemoryBytes, 256<<20)
	}
	if c.ColorOfPort(9002) != "green" || c.ContainerName("blue") != "mywebchat-blue" {
		t.Errorf("colors not applied: %+v", c.App.Colors)
	}
	if c.App.Health.HealthyAfter != 2 {
		t.Errorf("defaults lost: healthy_after = %d", c.App.Health.HealthyAfter)
	}
}

func TestLoadTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, make([]byte, maxConfigBytes+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Load(huge) = %v, want size error", err)
	}
}

// TestDesignExampleOwnerPlaceholder: a config may name ghcr.io/OWNER/… as written; registries keep
// repositories in lower case, so the example parses and means the lower-case repository.
func TestDesignExampleOwnerPlaceholder(t *testing.T) {
	c, err := Parse([]byte("app:\n  repository: ghcr.io/OWNER/mywebchat-app   # comment\n"))
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if got, want := c.App.Repository, "ghcr.io/owner/mywebchat-app"; got != want {
		t.Errorf("repository = %q, want %q", got, want)
	}
	if _, err := Parse([]byte("app:\n  repository: ghcr.io/OWNER/App:1\n")); err == nil {
		t.Error("a repository with a tag parsed; want an error")
	}
}

func TestLoopbackEnv(t *testing.T) {
	c := &Config{App: App{Env: map[string]string{
		"CHAT_REDIS_URL": "redis://127.0.0.1:6379/0",
		"B_URL":          "http://localhost:9000/x",
		"V6":             "redis://[::1]:6379",
		"BRIDGE":         "redis://172.17.0.1:6379/0",
		"PLAIN":          "127.0.0.1",
		"CHAT_HISTORY":   "200",
	}}}
	got := c.LoopbackEnv()
	want := []string{"B_URL", "CHAT_REDIS_URL", "V6"}
	if !slices.Equal(got, want) {
		t.Errorf("LoopbackEnv() = %v, want %v", got, want)
	}
}

// TestValidateChangesNothing: validation only reads; what Parse derives (the lower-case
// repository, the memory limit in bytes) is done before it, by normalize.
func TestValidateChangesNothing(t *testing.T) {
	c := Default()
	c.App.Repository = "ghcr.io/OWNER/app"
	c.App.Memory = "256m"
	before := fmt.Sprintf("%+v", c)
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "app.repository") {
		t.Errorf("Validate = %v, want the upper-case repository reported", err)
	}
	if after := fmt.Sprintf("%+v", c); after != before {
		t.Errorf("Validate changed the config:\n before %s\n after  %s", before, after)
	}
	c.normalize()
	if c.App.Repository != "ghcr.io/owner/app" || c.App.MemoryBytes != 256<<20 {
		t.Errorf("normalize: repository %q memory %d", c.App.Repository, c.App.MemoryBytes)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after normalize = %v", err)
	}
}

// TestSocketDir: the data path's folder is derived from state_dir in container mode (the
// example config), TCP in host mode unless a folder is named, and "none" keeps TCP.
func TestSocketDir(t *testing.T) {
	base := "state_dir: /var/lib/deploy-agent\napp:\n  repository: example.com/a/b\n"
	tests := []struct {
		name, yaml, wantDir string
	}{
		{"container mode derives it", base, "/var/lib/deploy-agent/sockets/mywebchat"},
		{"host mode keeps tcp", base + "proxy: {mode: host}\n", ""},
		{"host mode with a folder", base + "  socket_dir: /run/mywebchat\nproxy: {mode: host}\n", "/run/mywebchat"},
		{"none", base + "  socket_dir: none\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.EffectiveSocketDir(); got != tt.wantDir {
				t.Fatalf("EffectiveSocketDir() = %q, want %q", got, tt.wantDir)
			}
			if tt.wantDir == "" {
				if c.SocketPath("blue") != "" || c.ColorOfSocket("/x/blue.sock") != "" {
					t.Fatalf("TCP data path has socket paths")
				}
				return
			}
			green := filepath.Join(tt.wantDir, "green.sock")
			if c.SocketPath("green") != green || c.ColorOfSocket(green) != "green" || c.ColorOfSocket(tt.wantDir+"/red.sock") != "" {
				t.Fatalf("SocketPath(green) = %q, ColorOfSocket = %q", c.SocketPath("green"), c.ColorOfSocket(green))
			}
		})
	}
	ex, err := Load(exampleConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if ex.EffectiveSocketDir() != "/var/lib/deploy-agent/sockets/mywebchat" {
		t.Errorf("example config's socket folder = %q", ex.EffectiveSocketDir())
	}
}
