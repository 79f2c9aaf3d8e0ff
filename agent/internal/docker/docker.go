// Package docker is the agent's only door to the Docker Engine API (github.com/moby/moby/client,
// API version negotiated). It speaks in the agent's own small types so nothing else imports the SDK.
package docker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
)

// ErrNotFound means the image or container does not exist.
var ErrNotFound = errors.New("not found")

// ErrUnreachable means the engine did not answer.
var ErrUnreachable = errors.New("docker engine unreachable")

// Image is what the agent needs to know about a local image.
type Image struct {
	// ID is the content-addressable image ID (sha256:…).
	ID string
	// RepoDigests are repo@sha256:… references; empty for images built locally.
	RepoDigests []string
	// RepoTags are repo:tag references.
	RepoTags []string
	// User is the image's configured user ("65532:65532"); empty means root.
	User string
	// Labels are the image labels.
	Labels map[string]string
	// Created is when the image was built (used to order releases when pruning).
	Created time.Time
}

// Container is what the agent needs to know about a container.
type Container struct {
	ID      string
	Name    string // without the leading slash
	ImageID string
	Labels  map[string]string
	// State is created, running, exited, …
	State    string
	Running  bool
	ExitCode int
	// StartedAt is when the container last started; zero if never.
	StartedAt time.Time
}

// Spec describes a container to create.
type Spec struct {
	Name   string
	Image  string // what to run: an image ID or repo@digest
	Labels map[string]string
	Env    []string
	// HostPort is published on 127.0.0.1 to ContainerPort.
	HostPort, ContainerPort int
	// MemoryBytes limits memory; zero means no limit.
	MemoryBytes int64
	// Binds are host folder → container path read-write bind mounts.
	Binds map[string]string
	// StopTimeout is the grace period docker stop gives after SIGTERM.
	StopTimeout time.Duration
	// Network is a user-defined bridge network to join instead of the default bridge; empty
	// means the default. CreateContainer creates it when missing.
	Network string
}

// Client wraps the Engine API client.
type Client struct {
	api *client.Client
}

// New connects to the engine from the usual DOCKER_HOST environment (default: the local socket).
func New() (*Client, error) {
	api, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Client{api: api}, nil
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.api.Close() }

func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %w", op, ErrNotFound, err)
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%s: %w: %w", op, ErrUnreachable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Ping checks that the engine answers and returns its API version.
func (c *Client) Ping(ctx context.Context) (string, error) {
	r, err := c.api.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return "", wrap("ping docker", err)
	}
	return r.APIVersion, nil
}

// InspectImage returns the local image ref (name:tag, name@digest or ID), or ErrNotFound.
func (c *Client) InspectImage(ctx context.Context, ref string) (Image, error) {
	r, err := c.api.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, wrap("inspect image "+ref, err)
	}
	img := Image{ID: r.ID, RepoDigests: r.RepoDigests, RepoTags: r.RepoTags}
	if r.Config != nil {
		img.User = r.Config.User
		img.Labels = r.Config.Labels
	}
	if t, err := time.Parse(time.RFC3339Nano, r.Created); err == nil {
		img.Created = t
	}
	return img, nil
}

// PullImage pulls ref, with auth being the base64 registry auth header ("" for anonymous).
func (c *Client) PullImage(ctx context.Context, ref, auth string) error {
	resp, err := c.api.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return wrap("pull "+ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return wrap("pull "+ref, err)
	}
	return nil
}

// RemoveImage removes one image reference (a tag, a repo@digest or a bare ID) without force: the
// image itself goes only when no other reference names it, and the engine refuses while a
// container uses it.
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	_, err := c.api.ImageRemove(ctx, ref, client.ImageRemoveOptions{})
	return wrap("remove image "+ref, err)
}

// CreateContainer creates (does not start) a hardened container from spec: read-only root with a
// tmpfs /tmp, all capabilities dropped, no-new-privileges, restart unless-stopped, published on 127.0.0.1.
func (c *Client) CreateContainer(ctx context.Context, s Spec) (string, error) {
	port, err := network.ParsePort(strconv.Itoa(s.ContainerPort) + "/tcp")
	if err != nil {
		return "", fmt.Errorf("create %s: %w", s.Name, err)
	}
	stop := int(s.StopTimeout / time.Second)
	var mounts []mount.Mount
	for src, dst := range s.Binds {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: dst})
	}
	cfg := &container.Config{
		Image:        s.Image,
		Env:          s.Env,
		Labels:       s.Labels,
		ExposedPorts: network.PortSet{port: {}},
		StopTimeout:  &stop,
	}
	hc := &container.HostConfig{
		PortBindings:   network.PortMap{port: {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: strconv.Itoa(s.HostPort)}}},
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": "rw,noexec,nosuid,size=64m"},
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Mounts:         mounts,
		LogConfig:      container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "3"}},
	}
	hc.Memory = s.MemoryBytes
	if s.Network != "" {
		if err := c.EnsureNetwork(ctx, s.Network); err != nil {
			return "", fmt.Errorf("create %s: %w", s.Name, err)
		}
		hc.NetworkMode = container.NetworkMode(s.Network)
	}
	r, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.Name, Config: cfg, HostConfig: hc})
	if err != nil {
		return "", wrap("create container "+s.Name, err)
	}
	return r.ID, nil
}

// Network is what the agent needs to know about a Docker network.
type Network struct {
	Name, Driver string
	Internal     bool
}

// InspectNetwork returns the named network, or ErrNotFound.
func (c *Client) InspectNetwork(ctx context.Context, name string) (Network, error) {
	r, err := c.api.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	if err != nil {
		return Network{}, wrap("inspect network "+name, err)
	}
	return Network{Name: r.Network.Name, Driver: r.Network.Driver, Internal: r.Network.Internal}, nil
}

// EnsureNetwork creates the bridge network name unless it exists; a network made by someone
// else (the Redis unit, an operator) is used as it is.
func (c *Client) EnsureNetwork(ctx context.Context, name string) error {
	_, err := c.InspectNetwork(ctx, name)
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	_, err = c.api.NetworkCreate(ctx, name, client.NetworkCreateOptions{
		Driver: "bridge", Labels: map[string]string{"mywebchat.created-by": "deploy-agent"},
	})
	if cerrdefs.IsConflict(err) {
		// Created meanwhile, e.g. by the Redis unit starting at the same moment.
		return nil
	}
	return wrap("create network "+name, err)
}

// StartContainer starts a created or stopped container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	_, err := c.api.ContainerStart(ctx, id, client.ContainerStartOptions{})
	return wrap("start container "+id, err)
}

// StopContainer sends SIGTERM and waits up to timeout before SIGKILL.
func (c *Client) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout / time.Second)
	_, err := c.api.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &secs})
	return wrap("stop container "+id, err)
}

// RemoveContainer force-removes a container; a missing one is not an error.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	_, err := c.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return wrap("remove container "+id, err)
}

// InspectContainer returns a container by name or ID, or ErrNotFound.
func (c *Client) InspectContainer(ctx context.Context, name string) (Container, error) {
	r, err := c.api.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, wrap("inspect container "+name, err)
	}
	ci := r.Container
	out := Container{ID: ci.ID, Name: strings.TrimPrefix(ci.Name, "/"), ImageID: ci.Image}
	if ci.Config != nil {
		out.Labels = ci.Config.Labels
	}
	if ci.State != nil {
		out.State = string(ci.State.Status)
		out.Running = ci.State.Running
		out.ExitCode = ci.State.ExitCode
		if t, err := time.Parse(time.RFC3339Nano, ci.State.StartedAt); err == nil && t.Year() > 1 {
			out.StartedAt = t
		}
	}
	return out, nil
}

// ListContainers returns all containers (running or not) carrying every label in labels.
func (c *Client) ListContainers(ctx context.Context, labels map[string]string) ([]Container, error) {
	f := make(client.Filters)
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	r, err := c.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, wrap("list containers", err)
	}
	var out []Container
	for _, s := range r.Items {
		name := ""
		if len(s.Names) > 0 {
			name = strings.TrimPrefix(s.Names[0], "/")
		}
		out = append(out, Container{ID: s.ID, Name: name, ImageID: s.ImageID, Labels: s.Labels, State: string(s.State), Running: s.State == container.StateRunning})
	}
	return out, nil
}

// maxLogBytes bounds the log tail quoted in errors.
const maxLogBytes = 8 << 10

// Logs returns the last lines of a container's stdout and stderr, interleaved.
func (c *Client) Logs(ctx context.Context, id string, lines int) (string, error) {
	rc, err := c.api.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return "", wrap("logs "+id, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	w := &limitWriter{w: &buf, n: maxLogBytes}
	if _, err := stdcopy.StdCopy(w, w, rc); err != nil && !errors.Is(err, errLimit) {
		return buf.String(), wrap("logs "+id, err)
	}
	return buf.String(), nil
}

var errLimit = errors.New("limit reached")

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		l.w.Write(p[:l.n])
		l.n = 0
		return 0, errLimit
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// Exec runs cmd in a running container and returns its exit code and combined output.
func (c *Client) Exec(ctx context.Context, name string, cmd []string) (int, string, error) {
	cr, err := c.api.ExecCreate(ctx, name, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return 0, "", wrap("exec in "+name, err)
	}
	at, err := c.api.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{})
	if err != nil {
		return 0, "", wrap("exec in "+name, err)
	}
	defer at.Close()
	var buf bytes.Buffer
	w := &limitWriter{w: &buf, n: maxLogBytes}
	if _, err := stdcopy.StdCopy(w, w, at.Reader); err != nil && !errors.Is(err, errLimit) {
		return 0, buf.String(), wrap("exec in "+name, err)
	}
	// The stream ends when the process exits; the exit code may lag a moment behind.
	for range 50 {
		ir, err := c.api.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
		if err != nil {
			return 0, buf.String(), wrap("exec in "+name, err)
		}
		if !ir.Running {
			return ir.ExitCode, buf.String(), nil
		}
		select {
		case <-ctx.Done():
			return 0, buf.String(), ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0, buf.String(), fmt.Errorf("exec in %s: still running after its output ended", name)
}

// Signal sends sig (e.g. "HUP") to a container's main process.
func (c *Client) Signal(ctx context.Context, name, sig string) error {
	_, err := c.api.ContainerKill(ctx, name, client.ContainerKillOptions{Signal: sig})
	return wrap("signal "+sig+" to "+name, err)
}

// maxAuthFileBytes bounds the registry auth file.
const maxAuthFileBytes = 64 << 10

// RegistryAuth reads path and returns the encoded auth header for the registry host of ref.
// It accepts a docker config.json ({"auths":{"ghcr.io":{"auth":"base64(user:token)"}}}, or
// {"credHelpers":{"ghcr.io":"NAME"}} to ask docker-credential-NAME, as the docker CLI does) or a
// single {"username","password","serveraddress"} object. The credentials never leave this function
// except encoded for the engine, and errors never quote them.
//
// It is called for every pull, so a credential helper that reads a secret store (the host's
// docker-credential-mywebchat-ssm reads SSM Parameter Store) makes a rotated token effective
// on the next pull without touching the host.
func RegistryAuth(path, registryHost string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil // optional: no file means anonymous pulls
	}
	if err != nil {
		return "", fmt.Errorf("registry auth file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAuthFileBytes))
	if err != nil {
		return "", fmt.Errorf("registry auth file: %w", err)
	}
	var doc struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
		CredHelpers map[string]string `json:"credHelpers"`
		registry.AuthConfig
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", errors.New("registry auth file: not valid JSON")
	}
	ac := doc.AuthConfig
	// The docker CLI's order: a credential helper for the host wins over a stored entry.
	if helper, ok := doc.CredHelpers[registryHost]; ok {
		var found bool
		ac, found, err = credentialFromHelper(helper, registryHost)
		if err != nil {
			return "", fmt.Errorf("registry auth file: %w", err)
		}
		if !found {
			return "", nil // the helper has nothing for this registry: pull anonymously
		}
	} else if len(doc.Auths) > 0 {
		found := false
		for host, a := range doc.Auths {
			h := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://"), "/")
			if h != registryHost {
				continue
			}
			found = true
			ac = registry.AuthConfig{Username: a.Username, Password: a.Password, ServerAddress: registryHost}
			if a.Auth != "" {
				dec, err := base64.StdEncoding.DecodeString(a.Auth)
				user, pass, ok := strings.Cut(string(dec), ":")
				if err != nil || !ok {
					return "", fmt.Errorf("registry auth file: the auth entry for %s is not base64(user:password)", registryHost)
				}
				ac.Username, ac.Password = user, pass
			}
		}
		if !found {
			return "", nil // no credentials for this registry: pull anonymously
		}
	}
	if ac.ServerAddress == "" {
		ac.ServerAddress = registryHost
	}
	enc, err := authconfig.Encode(ac)
	if err != nil {
		return "", errors.New("registry auth file: cannot encode credentials")
	}
	return enc, nil
}

// credHelperTimeout bounds one run of a credential helper: it may call a remote secret
// store (Parameter Store answers in well under a second), and a pull must not hang on it.
const credHelperTimeout = 30 * time.Second

// maxCredHelperOutput bounds what a credential helper may print.
const maxCredHelperOutput = 64 << 10

// credHelperName is what may follow "docker-credential-": a name, never a path.
var credHelperName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// credentialFromHelper runs `docker-credential-NAME get` with the registry host on stdin, as the
// docker CLI does (github.com/docker/docker-credential-helpers protocol), and returns its
// credentials. A helper's "not found" means anonymous pulls, like a host missing from "auths".
// Errors quote the helper's stderr (bounded) but never its stdout, which holds the secret.
func credentialFromHelper(name, registryHost string) (ac registry.AuthConfig, found bool, err error) {
	if !credHelperName.MatchString(name) {
		return ac, false, fmt.Errorf("credHelpers: %q is not a credential helper name", name)
	}
	bin := "docker-credential-" + name
	ctx, cancel := context.WithTimeout(context.Background(), credHelperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "get")
	cmd.Stdin = strings.NewReader(registryHost + "\n")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedWriter{w: &stdout, n: maxCredHelperOutput}
	cmd.Stderr = &limitedWriter{w: &stderr, n: 512}
	if err = cmd.Run(); err != nil {
		// The protocol's "not found" is printed on stdout; it carries no secret.
		if strings.Contains(stdout.String(), "credentials not found") {
			return ac, false, nil
		}
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			msg = "no answer within " + credHelperTimeout.String()
		}
		return ac, false, fmt.Errorf("%s get for %s: %w: %s", bin, registryHost, err, msg)
	}
	var out struct {
		Username string `json:"Username"`
		Secret   string `json:"Secret"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || out.Secret == "" {
		return ac, false, fmt.Errorf("%s get for %s: the answer is not {\"Username\",\"Secret\"} JSON", bin, registryHost)
	}
	return registry.AuthConfig{Username: out.Username, Password: out.Secret, ServerAddress: registryHost}, true, nil
}

// limitedWriter keeps the first n bytes written to it and drops the rest, so a runaway helper
// cannot fill the agent's memory.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		if _, err := l.w.Write(p[:k]); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// ContainerEvent is one lifecycle event of a container, as reported by the engine's event stream.
type ContainerEvent struct {
	// ID is the container ID.
	ID string
	// Name is the container name without the leading slash; empty if the engine did not say.
	Name string
	// Action is die, stop, oom, destroy, …
	Action string
	// Time is when the engine saw the event.
	Time time.Time
}

// ContainerEvents subscribes to the engine's event stream for containers carrying every label in
// labels, limited to actions (none: all). It returns an error if the subscription fails. Otherwise
// events arrive on the first channel until ctx ends or the stream breaks (engine restart, network
// error); then exactly one error is sent on the second channel and both channels are closed. The
// caller re-subscribes; events that happen in between are not replayed.
func (c *Client) ContainerEvents(ctx context.Context, labels map[string]string, actions ...string) (<-chan ContainerEvent, <-chan error, error) {
	f := make(client.Filters).Add("type", string(events.ContainerEventType))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	if len(actions) > 0 {
		f.Add("event", actions...)
	}
	// Events may return before a failed request's error reaches Err (the
	// client closes its "started" signal first), so an engine that does not
	// answer is found by a ping, which fails in line.
	if _, err := c.Ping(ctx); err != nil {
		return nil, nil, fmt.Errorf("subscribe to docker events: %w", err)
	}
	r := c.api.Events(ctx, client.EventsListOptions{Filters: f})
	// Most other failures are on Err by now; a later one ends the stream.
	select {
	case err := <-r.Err:
		return nil, nil, wrap("subscribe to docker events", err)
	default:
	}
	out := make(chan ContainerEvent)
	errc := make(chan error, 1)
	go func() {
		defer close(errc)
		defer close(out)
		for {
			select {
			case m := <-r.Messages:
				ev := ContainerEvent{ID: m.Actor.ID, Name: strings.TrimPrefix(m.Actor.Attributes["name"], "/"), Action: string(m.Action)}
				if m.TimeNano != 0 {
					ev.Time = time.Unix(0, m.TimeNano)
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-r.Err:
				if err == nil {
					err = io.EOF
				}
				errc <- wrap("docker events", err)
				return
			}
		}
	}()
	return out, errc, nil
}
