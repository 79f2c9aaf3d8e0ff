// Package config loads and validates the deploy agent's agent.yaml strictly:
// unknown keys are errors naming the key and its line, and every value is checked once here
// so the rest of the agent can trust it.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultPath is where the daemon and the CLI look for the config unless told otherwise.
const DefaultPath = "/etc/deploy-agent/agent.yaml"

// maxConfigBytes bounds the config file: it is small, and a huge file is a mistake.
const maxConfigBytes = 1 << 20

// ErrInvalid marks every config error, so callers can map it to exit code 2.
var ErrInvalid = errors.New("invalid config")

// Colors are the two slots of a blue/green deploy, in a fixed order.
var Colors = []string{"blue", "green"}

// Config is the whole agent.yaml.
type Config struct {
	StateDir string   `yaml:"state_dir"`
	App      App      `yaml:"app"`
	Proxy    Proxy    `yaml:"proxy"`
	Registry Registry `yaml:"registry"`
}

// App describes the application the agent deploys.
type App struct {
	Name          string            `yaml:"name"`
	Repository    string            `yaml:"repository"`
	ContainerPort int               `yaml:"container_port"`
	Colors        map[string]Color  `yaml:"colors"`
	Env           map[string]string `yaml:"env"`
	EnvFile       string            `yaml:"env_file"`
	Health        Health            `yaml:"health"`
	DrainTimeout  Duration          `yaml:"drain_timeout"`
	Verify        Duration          `yaml:"verify"`
	KeepReleases  int               `yaml:"keep_releases"`
	// Memory is an optional container memory limit such as "256m" or "1g"; empty means no limit.
	Memory string `yaml:"memory"`
	// MemoryBytes is Memory parsed; zero means no limit.
	MemoryBytes int64 `yaml:"-"`
	// Network is an optional user-defined Docker network the colors join (created on the first
	// deploy when missing), so they reach services on it by container name, such as
	// redis://mywebchat-redis:6379/0, without anything published on the host. Empty: the default bridge.
	Network string `yaml:"network"`
	// SocketDir is the host folder of the data path between nginx and the colors: each color
	// serves on <socket_dir>/<color>.sock, so a live connection can move to the next color.
	// Empty means <state_dir>/sockets/<app.name> in container mode (the nginx container mounts
	// <state_dir>/sockets) and TCP on the colors' ports in host mode, whose workers may not
	// traverse state_dir; "none" keeps TCP in either mode. See EffectiveSocketDir.
	SocketDir string `yaml:"socket_dir"`
}

// SocketDirNone is the app.socket_dir value that keeps the TCP data path.
const SocketDirNone = "none"

// maxSocketPath is the longest unix socket path the kernel accepts (sun_path, 108 bytes with NUL).
const maxSocketPath = 107

// Color is one slot's host port.
type Color struct {
	Port int `yaml:"port"`
}

// Health is the health gate for a freshly started container.
type Health struct {
	Path         string   `yaml:"path"`
	Interval     Duration `yaml:"interval"`
	Timeout      Duration `yaml:"timeout"`
	HealthyAfter int      `yaml:"healthy_after"`
	StartTimeout Duration `yaml:"start_timeout"`
}

// Proxy describes the nginx in front of the colors.
type Proxy struct {
	Mode          string   `yaml:"mode"`
	Container     string   `yaml:"container"`
	TestCommand   []string `yaml:"test_command"`
	ReloadCommand []string `yaml:"reload_command"`
	// Template is the upstream template file; empty means the template built into the binary.
	Template string `yaml:"template"`
	Output   string `yaml:"output"`
	CheckURL string `yaml:"check_url"`
}

// Registry holds optional registry credentials.
type Registry struct {
	// AuthFile is a JSON file with credentials (docker config.json or a single auth object); empty means anonymous pulls.
	AuthFile string `yaml:"auth_file"`
}

// Duration is a time.Duration written as "500ms", "30s" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string and reports the line of a bad one.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration like 30s: %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 500ms or 30s", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default returns the documented defaults (docs/config.md), the base that agent.yaml overrides.
func Default() Config {
	return Config{
		StateDir: "/var/lib/deploy-agent",
		App: App{
			Name:          "mywebchat",
			ContainerPort: 8080,
			Colors:        map[string]Color{"blue": {Port: 8081}, "green": {Port: 8082}},
			Health: Health{
				Path: "/healthz", Interval: Duration(500 * time.Millisecond), Timeout: Duration(2 * time.Second),
				HealthyAfter: 2, StartTimeout: Duration(60 * time.Second),
			},
			DrainTimeout: Duration(30 * time.Second),
			Verify:       Duration(5 * time.Second),
			KeepReleases: 3,
		},
		Proxy: Proxy{
			Mode:          "container",
			Container:     "mywebchat-nginx",
			TestCommand:   []string{"nginx", "-t"},
			ReloadCommand: []string{"nginx", "-s", "reload"},
			Output:        "/var/lib/deploy-agent/nginx/upstream.conf",
			CheckURL:      "http://127.0.0.1/healthz",
		},
	}
}

// Load reads and validates the config at path.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	defer f.Close()
	b, err := readLimited(f)
	if err != nil {
		return Config{}, fmt.Errorf("%w: read %s: %w", ErrInvalid, path, err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func readLimited(f *os.File) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, err
	}
	if n > maxConfigBytes {
		return nil, fmt.Errorf("larger than %d bytes", maxConfigBytes)
	}
	return buf.Bytes(), nil
}

// Parse decodes b strictly over Default, normalizes and validates the result.
func Parse(b []byte) (Config, error) {
	c := Default()
	// Colors are replaced, not merged, when the file names them.
	var probe struct {
		App struct {
			Colors yaml.Node `yaml:"colors"`
		} `yaml:"app"`
	}
	_ = yaml.Unmarshal(b, &probe)
	if probe.App.Colors.Kind != 0 {
		c.App.Colors = nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return Config{}, fmt.Errorf("%w: the file is empty", ErrInvalid)
		}
		return Config{}, fmt.Errorf("%w: %s", ErrInvalid, indexKeys(b).annotate(cleanYAMLError(err)))
	}
	c.normalize()
	if errs := c.problems(); len(errs) > 0 {
		ix := indexKeys(b)
		for i := range errs {
			errs[i] = ix.annotate(errs[i])
		}
		return Config{}, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return c, nil
}

// keyIndex knows where each key of the file is, so every error can name both the key and its line.
type keyIndex struct {
	lines  map[string]int // "app.health.interval" → line of the key
	values []keyValue     // scalar values, for decode errors that only know a line
}

type keyValue struct {
	path, value string
	line        int
}

func indexKeys(b []byte) keyIndex {
	ix := keyIndex{lines: map[string]int{}}
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return ix
	}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path := k.Value
				if prefix != "" {
					path = prefix + "." + k.Value
				}
				if _, seen := ix.lines[path]; !seen {
					ix.lines[path] = k.Line
				}
				ix.values = append(ix.values, keyValue{path: path, value: k.Value, line: k.Line})
				walk(v, path)
			}
		case yaml.ScalarNode:
			ix.values = append(ix.values, keyValue{path: prefix, value: n.Value, line: n.Line})
		}
	}
	walk(&root, "")
	return ix
}

var (
	lineMsgRE = regexp.MustCompile(`^line (\d+): (.*)$`)
	keyMsgRE  = regexp.MustCompile(`^([a-z_]+(?:\.[A-Za-z0-9_]+)*): (.*)$`)
)

// annotate rewrites every "; "-separated problem in msg as "line N: key.path: what".
// Decode errors know only the line (the key is found from the value on it); validation
// errors know only the key (its line, or its nearest parent's when the key is absent).
func (ix keyIndex) annotate(msg string) string {
	parts := strings.Split(msg, "; ")
	for i, p := range parts {
		if m := lineMsgRE.FindStringSubmatch(p); m != nil {
			line, _ := strconv.Atoi(m[1])
			if path := ix.keyOnLine(line, m[2]); path != "" && !strings.HasPrefix(m[2], path+":") {
				parts[i] = fmt.Sprintf("line %d: %s: %s", line, path, m[2])
			}
			continue
		}
		if m := keyMsgRE.FindStringSubmatch(p); m != nil {
			for path := m[1]; path != ""; {
				if line, ok := ix.lines[path]; ok {
					parts[i] = fmt.Sprintf("line %d: %s", line, p)
					break
				}
				j := strings.LastIndexByte(path, '.')
				if j < 0 {
					break
				}
				path = path[:j]
			}
		}
	}
	return strings.Join(parts, "; ")
}

// keyOnLine finds the key a decode error on line is about: the one whose value (or, for an
// unknown key, whose name) the message quotes, else the only key on that line.
func (ix keyIndex) keyOnLine(line int, msg string) string {
	var onLine []keyValue
	for _, kv := range ix.values {
		if kv.line == line && kv.path != "" {
			onLine = append(onLine, kv)
		}
	}
	for _, kv := range onLine {
		if msg == "unknown key "+kv.value && (kv.path == kv.value || strings.HasSuffix(kv.path, "."+kv.value)) {
			return kv.path
		}
	}
	for _, kv := range onLine {
		if kv.value != "" && (strings.Contains(msg, `"`+kv.value+`"`) || strings.Contains(msg, "`"+kv.value+"`")) {
			return kv.path
		}
	}
	paths := map[string]bool{}
	for _, kv := range onLine {
		paths[kv.path] = true
	}
	if len(paths) == 1 {
		return onLine[0].path
	}
	return ""
}

// cleanYAMLError turns yaml.v3's "field x not found in type config.App" into "unknown key x".
func cleanYAMLError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: unmarshal errors:\n")
	s = notFoundRE.ReplaceAllString(s, "unknown key $1")
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

var notFoundRE = regexp.MustCompile(`field (\S+) not found in type \S+`)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
	// repoRE accepts registry/path image repositories in lower case, without tag or digest.
	repoRE   = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]{1,2}[a-z0-9]+)*)*$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks every value and returns all problems at once. It changes nothing.
func (c *Config) Validate() error {
	if errs := c.problems(); len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// normalize derives what follows from the values as written, before they are validated. It
// never fails: a value it cannot use stays as it is, for problems to report.
func (c *Config) normalize() {
	a := &c.App
	// Registries store repository paths in lower case (GHCR lower-cases the owner), so a config
	// written with the owner's display name, like ghcr.io/OWNER/…, means the same.
	if lower := strings.ToLower(a.Repository); lower != a.Repository && repoRE.MatchString(lower) {
		a.Repository = lower
	}
	a.MemoryBytes = 0
	if a.Memory != "" {
		if n, err := ParseBytes(a.Memory); err == nil {
			a.MemoryBytes = n
		}
	}
}

// problemList collects problems as "key.path: what is wrong".
type problemList []string

func (l *problemList) add(format string, a ...any) { *l = append(*l, fmt.Sprintf(format, a...)) }

// problems lists every invalid value as "key.path: what is wrong". It reads c and changes nothing.
func (c *Config) problems() []string {
	var l problemList
	if !strings.HasPrefix(c.StateDir, "/") {
		l.add("state_dir: must be an absolute path, got %q", c.StateDir)
	}
	c.App.problems(&l)
	c.socketProblems(&l)
	c.App.Health.problems(&l)
	c.Proxy.problems(&l)
	if c.Registry.AuthFile != "" && !strings.HasPrefix(c.Registry.AuthFile, "/") {
		l.add("registry.auth_file: must be an absolute path")
	}
	return l
}

func (a *App) problems(l *problemList) {
	if !nameRE.MatchString(a.Name) {
		l.add("app.name: %q must be lower-case letters, digits, '.', '_' or '-'", a.Name)
	}
	if a.Repository == "" {
		l.add("app.repository: must be set (deploys may only name images in it)")
	} else if !repoRE.MatchString(a.Repository) {
		l.add("app.repository: %q is not an image repository (no tag or digest, lower case)", a.Repository)
	}
	if a.ContainerPort < 1 || a.ContainerPort > 65535 {
		l.add("app.container_port: %d is not a port", a.ContainerPort)
	}
	colorProblems(a.Colors, l)
	envProblems(a.Env, l)
	if a.EnvFile != "" && !strings.HasPrefix(a.EnvFile, "/") {
		l.add("app.env_file: must be an absolute path, got %q", a.EnvFile)
	}
	if a.DrainTimeout.D() < 0 || a.DrainTimeout.D() > time.Hour {
		l.add("app.drain_timeout: %s must be between 0 and 1h", a.DrainTimeout.D())
	}
	if a.Verify.D() <= 0 {
		l.add("app.verify: must be positive")
	}
	if a.KeepReleases < 1 {
		l.add("app.keep_releases: %d must be at least 1 (the active release)", a.KeepReleases)
	}
	if a.Memory != "" && a.MemoryBytes < minMemoryBytes {
		l.add("app.memory: %q must be a size like 256m or 1g, at least 6m", a.Memory)
	}
	switch {
	case a.Network == "":
	case a.Network == "host" || a.Network == "none":
		l.add("app.network: %q cannot publish the colors' ports on 127.0.0.1; name a bridge network such as mywebchat, or leave it empty", a.Network)
	case !nameRE.MatchString(a.Network):
		l.add("app.network: %q is not a Docker network name (lower-case letters, digits, _ . -)", a.Network)
	}
}

func (c *Config) socketProblems(l *problemList) {
	switch sd := c.App.SocketDir; {
	case sd == "" || sd == SocketDirNone:
	case !strings.HasPrefix(sd, "/") || filepath.Clean(sd) != sd || strings.ContainsAny(sd, socketDirUnsafe):
		l.add("app.socket_dir: %q must be a clean absolute path without spaces or quotes, or %q", sd, SocketDirNone)
		return
	}
	if dir := c.EffectiveSocketDir(); dir != "" && len(c.SocketPath("green")) > maxSocketPath {
		if c.App.SocketDir == "" {
			l.add("state_dir: %q is too long for the colors' socket paths (%d bytes at most); set app.socket_dir to a shorter folder, or %q", c.StateDir, maxSocketPath, SocketDirNone)
		} else {
			l.add("app.socket_dir: %q is too long for the colors' socket paths (%d bytes at most)", c.App.SocketDir, maxSocketPath)
		}
	}
}

// minMemoryBytes is the smallest memory limit the Docker engine accepts.
const minMemoryBytes = 6 << 20

func colorProblems(colors map[string]Color, l *problemList) {
	if len(colors) != 2 {
		l.add("app.colors: must define exactly blue and green")
	}
	for name, col := range colors {
		if name != "blue" && name != "green" {
			l.add("app.colors: unknown color %q (want blue and green)", name)
		}
		if col.Port < 1 || col.Port > 65535 {
			l.add("app.colors.%s.port: %d is not a port", name, col.Port)
		}
	}
	if len(colors) == 2 && colors["blue"].Port == colors["green"].Port {
		l.add("app.colors: blue and green need different ports")
	}
}

func envProblems(env map[string]string, l *problemList) {
	for k, v := range env {
		if !envKeyRE.MatchString(k) {
			l.add("app.env: %q is not a variable name", k)
		}
		if strings.ContainsAny(v, "\x00\n") {
			l.add("app.env.%s: value contains a newline or NUL", k)
		}
		if k == "APP_COLOR" || k == "APP_VERSION" || k == "CHAT_HANDOVER_DIR" || k == "CHAT_SOCKET" {
			l.add("app.env.%s: set by the agent, cannot be configured", k)
		}
	}
}

func (h *Health) problems(l *problemList) {
	if !strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \n") {
		l.add("app.health.path: %q must start with /", h.Path)
	}
	if h.Interval.D() < 10*time.Millisecond {
		l.add("app.health.interval: %s is too short (at least 10ms)", h.Interval.D())
	}
	if h.Timeout.D() <= 0 {
		l.add("app.health.timeout: must be positive")
	}
	if h.HealthyAfter < 1 {
		l.add("app.health.healthy_after: %d must be at least 1", h.HealthyAfter)
	}
	if h.StartTimeout.D() < h.Interval.D() {
		l.add("app.health.start_timeout: %s must be at least the interval", h.StartTimeout.D())
	}
}

func (p *Proxy) problems(l *problemList) {
	switch p.Mode {
	case "container":
		if !nameRE.MatchString(p.Container) {
			l.add("proxy.container: %q is not a container name", p.Container)
		}
	case "host":
		if len(p.TestCommand) == 0 || p.TestCommand[0] == "" {
			l.add("proxy.test_command: must name a command in host mode")
		}
		if len(p.ReloadCommand) == 0 || p.ReloadCommand[0] == "" {
			l.add("proxy.reload_command: must name a command in host mode")
		}
	default:
		l.add("proxy.mode: %q must be container or host", p.Mode)
	}
	if p.Template != "" && !strings.HasPrefix(p.Template, "/") {
		l.add("proxy.template: must be an absolute path, got %q", p.Template)
	}
	if !strings.HasPrefix(p.Output, "/") || strings.HasSuffix(p.Output, "/") {
		l.add("proxy.output: must be an absolute file path, got %q", p.Output)
	}
	if u, err := url.Parse(p.CheckURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.add("proxy.check_url: %q must be an http(s) URL", p.CheckURL)
	}
}

// socketDirUnsafe are characters that must not reach the nginx upstream file through a socket path.
const socketDirUnsafe = "\n\r;{}#'\"`\\ \t$:"

// EffectiveSocketDir is the folder of the colors' unix sockets, or "" when the data path is TCP
// on the colors' ports (see App.SocketDir).
func (c *Config) EffectiveSocketDir() string {
	switch c.App.SocketDir {
	case SocketDirNone:
		return ""
	case "":
		if c.Proxy.Mode != "container" {
			return ""
		}
		return filepath.Join(c.StateDir, "sockets", c.App.Name)
	default:
		return c.App.SocketDir
	}
}

// SocketPath is the unix socket color serves on, or "" when the data path is TCP.
func (c *Config) SocketPath(color string) string {
	dir := c.EffectiveSocketDir()
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, color+".sock")
}

// ColorOfSocket returns the color serving on the socket at path, or "".
func (c *Config) ColorOfSocket(path string) string {
	for _, name := range Colors {
		if p := c.SocketPath(name); p != "" && p == path {
			return name
		}
	}
	return ""
}

// Port returns the host port of color, or 0 for an unknown color.
func (c *Config) Port(color string) int { return c.App.Colors[color].Port }

// ColorOfPort returns the color published on port, or "".
func (c *Config) ColorOfPort(port int) string {
	for _, name := range Colors {
		if c.App.Colors[name].Port == port {
			return name
		}
	}
	return ""
}

// ContainerName is the container of a color: <app.name>-<color>.
func (c *Config) ContainerName(color string) string { return c.App.Name + "-" + color }

// LoopbackEnv returns, sorted, the app.env keys whose value is a URL naming a
// loopback host. The chat containers have a network namespace of their own,
// so such a URL (the design's example CHAT_REDIS_URL) reaches the container
// itself, not the host: callers warn and point at app.network, since a Redis
// the containers can reach at that address (a sidecar) is still possible.
func (c *Config) LoopbackEnv() []string {
	var keys []string
	for k, v := range c.App.Env {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			continue
		}
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Other returns the color that is not color.
func Other(color string) string {
	if color == "blue" {
		return "green"
	}
	return "blue"
}

// ParseBytes parses sizes like 512k, 256m, 1g (binary units) or a plain byte count.
func ParseBytes(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, strings.TrimSuffix(s, "g")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
