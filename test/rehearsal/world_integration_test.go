//go:build integration

package rehearsal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/rehearsal/fakeaws/fakeawstest"
)

var long = flag.Bool("rehearsal.long", false, "the long form: three hosts, more rollouts, heavier load (make bench)")

const (
	owner        = "acme" // the GitHub owner the rehearsal's images and documents name
	hostRepo     = "mywebchat/rehearsal-host"
	appBaseImage = "mywebchat/rehearsal-app:base"
	baseImage    = "mywebchat/debian-base:local"
	goImage      = "mywebchat/go-builder:local"
	deployDoc    = "MyWebChat-Deploy"
	tagKey       = "App"
	tagValue     = "mywebchat"
	region       = "eu-west-1"
	// hostStateDir is where each host's engine keeps its images and
	// containers: a folder on the outer engine's disk, as overlay2 needs.
	hostStateDir = "/var/lib/mywebchat-rehearsal"
)

// world is one rehearsal: the repository's artifacts built once, the fake
// AWS account, and the stand-in hosts.
type world struct {
	t     testing.TB
	root  string // the module's root: the checkout release.yml would see
	dir   string // scratch space of this run
	bin   string // aws (fakeaws) and gh (stub); first on the workflow's PATH
	state string // FAKEAWS_STATE_DIR
	// bundle is the folder release.yml's bundle step uploaded from:
	// mywebchat-host.tar.gz and its .sha256.
	bundle    string
	bundleSHA string // the commit the bundle says it belongs to
	hostImage string
	hosts     []*host
	nextRel   int
	runID     int
	appBuilt  bool // the chat server image was built from this checkout in this run
	shape     loadShape
	figures   []scenarioFigures
}

// run runs a command and fails the test with its output when it fails.
func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// newWorld builds what every scenario needs: the host image (cached by the
// hash of its inputs), the fake aws CLI, and the host bundle exactly as
// release.yml's bundle step builds it.
func newWorld(t *testing.T) *world {
	t.Helper()
	w := newBareWorld(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); w.hostImage = buildHostImage(t, w.root) }()
	w.buildTools()
	w.buildBundle()
	w.registerDocuments()
	wg.Wait()
	return w
}

// newBareWorld is a world with its folders and the fake AWS account's
// state, and nothing built yet.
func newBareWorld(t *testing.T) *world {
	t.Helper()
	root := strings.TrimSpace(run(t, ".", "go", "env", "GOMOD"))
	if root == "" || root == os.DevNull {
		t.Fatal("not inside the module")
	}
	for _, tool := range []string{"docker", "bash", "java", "sha256sum", "tar", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the rehearsal needs %s on PATH (scripts/setup.sh installs it): %v", tool, err)
		}
	}
	if out, err := runErr(".", nil, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Fatalf("the rehearsal needs a running Docker engine (scripts/setup.sh starts one): %v\n%s", err, out)
	}
	w := &world{t: t, root: filepath.Dir(root), dir: t.TempDir(), runID: int(time.Now().Unix() % 100000)}
	w.bin = filepath.Join(w.dir, "bin")
	w.state = filepath.Join(hostStateDir, fmt.Sprintf("fakeaws-%d-%s", os.Getpid(), t.Name()))
	for _, d := range []string{w.bin, w.state, filepath.Join(w.dir, "empty-context"), filepath.Join(w.state, "instances"), filepath.Join(w.state, "documents")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(w.state) })
	return w
}

// buildHostImage builds test/rehearsal/host once per content of its inputs
// (the Dockerfile and the base image's ID) and reuses it afterwards.
func buildHostImage(t testing.TB, root string) string {
	dir := filepath.Join(root, "test", "rehearsal", "host")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Error(err)
		return ""
	}
	h := sha256.New()
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Error(err)
			return ""
		}
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	baseID, err := runErr(".", nil, "docker", "image", "inspect", "--format", "{{.Id}}", baseImage)
	if err != nil {
		t.Errorf("the stand-in host is built FROM %s (scripts/setup.sh builds it): %s", baseImage, baseID)
		return ""
	}
	h.Write([]byte(baseID))
	tag := hostRepo + ":" + hex.EncodeToString(h.Sum(nil))[:16]
	if _, err := runErr(".", nil, "docker", "image", "inspect", tag); err == nil {
		return tag
	}
	if out, err := runErr(dir, nil, "docker", "build", "--network", "host", "--build-arg", "BASE_IMAGE="+baseImage, "-t", tag, "."); err != nil {
		t.Errorf("build the stand-in host image: %v\n%s", err, out)
		return ""
	}
	return tag
}

// buildTools builds the fake aws CLI (static: it also runs inside the
// hosts, for install.sh's own calls), the stand-in for GitHub's API of a
// private repository (static, run inside a host) and the gh stub the
// bundle step uses.
func (w *world) buildTools() {
	t := w.t
	if _, err := fakeawstest.Build(w.bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(w.dir, "fakegithub"), "./test/rehearsal/fakegithub")
	cmd.Dir = w.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in for GitHub's API: %v\n%s", err, out)
	}
	// gh release create TAG FILE... --flags: collects the files, as the
	// GitHub release would publish them.
	gh := `#!/bin/sh
set -eu
[ "$1 $2" = "release create" ] || { echo "gh stub: only 'release create' is expected, got: $*" >&2; exit 1; }
shift 3
for f in "$@"; do
	case "$f" in --*) break ;; esac
	cp "$f" "$GH_STUB_OUT/"
done
`
	if err := os.WriteFile(filepath.Join(w.bin, "gh"), []byte(gh), 0o755); err != nil {
		t.Fatal(err)
	}
}

// sourceCopy copies the checkout's files (tracked and new, not ignored) to
// a fresh folder, as actions/checkout would give the job.
func (w *world) sourceCopy(name string) string {
	t := w.t
	dst := filepath.Join(w.dir, name)
	files := run(t, w.root, "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	for _, f := range strings.Split(strings.TrimRight(files, "\x00"), "\x00") {
		if f == "" {
			continue
		}
		src := filepath.Join(w.root, f)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or a symlink
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// buildBundle runs release.yml's bundle step, unchanged, in a copy of the
// checkout, with a gh that keeps the files it would publish.
func (w *world) buildBundle() {
	t := w.t
	src := w.sourceCopy("src")
	w.bundle = filepath.Join(w.dir, "release-assets")
	if err := os.MkdirAll(w.bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	w.bundleSHA = w.newSHA()
	step := readStep(t, filepath.Join(w.root, ".github", "workflows", "release.yml"), "bundle", "build and publish")
	gocache := strings.TrimSpace(run(t, ".", "go", "env", "GOCACHE"))
	gomodcache := strings.TrimSpace(run(t, ".", "go", "env", "GOMODCACHE"))
	env := append(stepEnv(t, step, map[string]string{"GH_TOKEN": "rehearsal-token", "SHA": w.bundleSHA}),
		"PATH="+w.bin+":"+os.Getenv("PATH"), "HOME="+w.dir, "GOCACHE="+gocache, "GOMODCACHE="+gomodcache,
		"GOFLAGS=-mod=mod", "GH_STUB_OUT="+w.bundle)
	if p := os.Getenv("GOPROXY"); p != "" {
		env = append(env, "GOPROXY="+p)
	}
	cmd := stepCommand(t, src, step.Run, env)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("release.yml's bundle step failed: %v\n%s", err, out)
	}
	run(t, w.bundle, "sha256sum", "-c", "mywebchat-host.tar.gz.sha256")
}

// bundleTag is the GitHub release the bundle belongs to, as release.yml names it.
func (w *world) bundleTag() string { return "sha-" + w.bundleSHA }

// newSHA is a fresh 40-hex commit id for a release of this run.
func (w *world) newSHA() string {
	w.nextRel++
	h := sha256.Sum256([]byte(fmt.Sprintf("rehearsal %d %d %d", w.runID, os.Getpid(), w.nextRel)))
	return hex.EncodeToString(h[:])[:40]
}

// registerDocuments registers the SSM documents as the README says: OWNER
// replaced by the images' owner.
func (w *world) registerDocuments() {
	t := w.t
	for name, file := range map[string]string{deployDoc: "ssm-deploy.yaml", "MyWebChat-AgentUpgrade": "ssm-agent-upgrade.yaml"} {
		b, err := os.ReadFile(filepath.Join(w.root, "deploy", file))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.ReplaceAll(b, []byte("OWNER"), []byte(owner))
		if err := os.WriteFile(filepath.Join(w.state, "documents", name+".yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// aws runs the fake aws CLI against this world's account.
func (w *world) aws(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(w.bin, "aws"), args...)
	cmd.Env = append(os.Environ(), "FAKEAWS_STATE_DIR="+w.state)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), fmt.Errorf("aws %s: %w: %s", strings.Join(args, " "), err, ee.Stderr)
		}
	}
	return string(out), err
}

// instance is the fake account's record of one EC2 instance (the registry
// format of fakeaws).
type instance struct {
	InstanceID string            `json:"InstanceId"`
	Tags       map[string]string `json:"Tags"`
	State      string            `json:"State,omitempty"`
	Managed    bool              `json:"Managed"`
	PingStatus string            `json:"PingStatus,omitempty"`
	Exec       struct {
		Kind       string `json:"Kind"`
		Container  string `json:"Container,omitempty"`
		AgentCheck string `json:"AgentCheck,omitempty"`
	} `json:"Exec"`
}

func (w *world) instance(id string) instance {
	var in instance
	b, err := os.ReadFile(filepath.Join(w.state, "instances", id+".json"))
	if err != nil {
		w.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &in); err != nil {
		w.t.Fatal(err)
	}
	return in
}

func (w *world) saveInstance(in instance) {
	b, _ := json.MarshalIndent(in, "", "  ")
	p := filepath.Join(w.state, "instances", in.InstanceID+".json")
	if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
		w.t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		w.t.Fatal(err)
	}
}

// waitFor polls cond every 200 ms until it holds or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return nil
		}
		last = detail
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: not after %s (%s)", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
