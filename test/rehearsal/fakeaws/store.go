package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// stateEnv names the state directory; see the package comment for its layout.
const stateEnv = "FAKEAWS_STATE_DIR"

type store struct{ dir string }

func openStore() (*store, error) {
	dir := os.Getenv(stateEnv)
	if dir == "" {
		return nil, fmt.Errorf("%s is not set: point it at the fake AWS state directory", stateEnv)
	}
	for _, sub := range []string{"instances", "documents", "commands", "faults"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	return &store{dir: dir}, nil
}

func (s *store) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

// logCall appends the call's argv to calls.log (O_APPEND keeps concurrent
// lines whole).
func (s *store) logCall(argv []string) {
	b, err := json.Marshal(map[string]any{"time": time.Now().UTC().Format(time.RFC3339Nano), "argv": argv})
	if err != nil {
		return
	}
	f, err := os.OpenFile(s.path("calls.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}

// fault returns the injected error for service.op, if the harness set one.
func (s *store) fault(service, op string) error {
	b, err := os.ReadFile(s.path("faults", service+"."+op))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read fault: %w", err)
	}
	code, msg, ok := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !ok {
		return apiErr("InternalServerError", "%s", strings.TrimSpace(string(b)))
	}
	return apiErr(strings.TrimSpace(code), "%s", strings.TrimSpace(msg))
}

// writeJSON writes v to path atomically: temp file, fsync, rename.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, append(b, '\n'))
}

func writeFileAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// lock takes an exclusive flock on name (a file in the state dir) and
// returns its release.
func (s *store) lock(name string) (func(), error) {
	f, err := os.OpenFile(s.path(name), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Instance is one entry of the instance registry (see the package comment).
type Instance struct {
	InstanceId string
	Tags       map[string]string `json:",omitempty"`
	State      string            `json:",omitempty"`
	Managed    bool
	PingStatus string `json:",omitempty"`
	Exec       Exec
}

// Exec says how commands reach an instance.
type Exec struct {
	Kind       string // "docker" or "local"
	Container  string `json:",omitempty"`
	AgentCheck string `json:",omitempty"`
	Dir        string `json:",omitempty"`
	Delay      string `json:",omitempty"`
	Script     string `json:",omitempty"`
}

func (i *Instance) state() string {
	if i.State == "" {
		return "running"
	}
	return i.State
}

func (i *Instance) validate() error {
	if !strings.HasPrefix(i.InstanceId, "i-") || strings.ContainsAny(i.InstanceId, "/ \n") {
		return fmt.Errorf("InstanceId %q: want i-<id>", i.InstanceId)
	}
	switch i.PingStatus {
	case "", "Online", "ConnectionLost", "Inactive":
	default:
		return fmt.Errorf("instance %s: PingStatus %q: want Online, ConnectionLost or Inactive", i.InstanceId, i.PingStatus)
	}
	if !i.Managed {
		return nil
	}
	switch i.Exec.Kind {
	case "docker":
		if i.Exec.Container == "" {
			return fmt.Errorf("instance %s: Exec.Container is required for kind docker", i.InstanceId)
		}
	case "local":
		if i.Exec.Dir == "" {
			return fmt.Errorf("instance %s: Exec.Dir is required for kind local", i.InstanceId)
		}
		if i.Exec.Delay != "" {
			if _, err := time.ParseDuration(i.Exec.Delay); err != nil {
				return fmt.Errorf("instance %s: Exec.Delay: %w", i.InstanceId, err)
			}
		}
	default:
		return fmt.Errorf("instance %s: Exec.Kind %q: want docker or local", i.InstanceId, i.Exec.Kind)
	}
	return nil
}

func (s *store) instance(id string) (*Instance, error) {
	var in Instance
	if strings.ContainsAny(id, "/\\") || id == "" {
		return nil, fmt.Errorf("bad instance id %q", id)
	}
	if err := readJSON(s.path("instances", id+".json"), &in); err != nil {
		return nil, err
	}
	if in.InstanceId != id {
		return nil, fmt.Errorf("instances/%s.json names InstanceId %q", id, in.InstanceId)
	}
	if err := in.validate(); err != nil {
		return nil, err
	}
	return &in, nil
}

func (s *store) instances() ([]*Instance, error) {
	files, err := filepath.Glob(s.path("instances", "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*Instance
	for _, f := range files {
		in, err := s.instance(strings.TrimSuffix(filepath.Base(f), ".json"))
		if err != nil {
			return nil, fmt.Errorf("instance registry: %w", err)
		}
		out = append(out, in)
	}
	return out, nil
}

func (s *store) saveInstance(in *Instance) error {
	return writeJSON(s.path("instances", in.InstanceId+".json"), in)
}
