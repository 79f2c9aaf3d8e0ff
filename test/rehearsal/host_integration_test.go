//go:build integration

package rehearsal

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostCaps are the capabilities a stand-in host needs to boot systemd and
// run its own engine; --privileged is refused on this engine.
var hostCaps = []string{"SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "MKNOD", "NET_RAW", "SETFCAP",
	"IPC_LOCK", "SYS_NICE", "SYS_TIME", "SYS_RAWIO", "DAC_READ_SEARCH", "SYS_BOOT", "AUDIT_CONTROL"}

// host is one stand-in EC2 instance.
type host struct {
	w         *world
	name      string // host-a
	id        string // its EC2 instance id
	container string
	dockerDir string
	port      int // its nginx's port 80, published on 127.0.0.1
	// private: bootstrapped as a private repository's host (the bundle
	// through GitHub's API with the token); githubSeen counts the requests
	// its stand-in GitHub API has checked so far.
	private    bool
	githubSeen int
}

func (h *host) base() string { return fmt.Sprintf("http://127.0.0.1:%d", h.port) }

// bootHost starts a stand-in host: systemd as PID 1, its own engine, a
// placeholder SSM agent unit, the AWS CLI (the fake one, sharing the
// account's state), and an entry in the fake EC2 inventory, untagged:
// it becomes a deploy target once its bootstrap tags it.
func (w *world) bootHost(name string) *host { return w.bootHostWith(name) }

// bootHostWith is bootHost with more `docker run` options for the host.
func (w *world) bootHostWith(name string, runArgs ...string) *host {
	t := w.t
	h := &host{w: w, name: name, container: "mywebchat-rehearsal-" + name,
		dockerDir: filepath.Join(hostStateDir, name+"-docker")}
	h.id = "i-0" + w.newSHA()[:16]
	h.remove()
	if err := os.MkdirAll(h.dockerDir, 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "-d", "--name", h.container, "--hostname", name}
	for _, c := range hostCaps {
		args = append(args, "--cap-add", c)
	}
	args = append(args, "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
		"-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", "-v", h.dockerDir+":/var/lib/docker",
		"-v", w.state+":"+w.state, "--tmpfs", "/run", "--tmpfs", "/run/lock",
		// What EC2's kernel gets from install.sh's sysctl file: this host's
		// /proc/sys is read-only, so the engine sets it on the namespace.
		"--sysctl", "net.ipv4.tcp_migrate_req=1",
		"-p", "127.0.0.1::80")
	args = append(append(args, runArgs...), w.hostImage)
	run(t, ".", "docker", args...)
	t.Cleanup(h.remove)
	ctx := context.Background()
	if err := waitFor(ctx, 60*time.Second, name+" boots", func() (bool, string) {
		out, _ := h.execErr("systemctl is-system-running")
		s := strings.TrimSpace(out)
		return s == "running", s
	}); err != nil {
		failed, _ := h.execErr("systemctl --failed --no-legend")
		t.Fatalf("%v; failed units:\n%s", err, failed)
	}
	out := run(t, ".", "docker", "port", h.container, "80/tcp")
	line := strings.TrimSpace(strings.Split(out, "\n")[0])
	p, err := strconv.Atoi(line[strings.LastIndex(line, ":")+1:])
	if err != nil {
		t.Fatalf("port of %s: %q", h.container, out)
	}
	h.port = p
	run(t, ".", "docker", "cp", filepath.Join(w.bin, "aws"), h.container+":/usr/local/lib/aws-cli")
	h.exec(fmt.Sprintf(`printf '#!/bin/sh\nFAKEAWS_STATE_DIR=%s exec /usr/local/lib/aws-cli "$@"\n' >/usr/local/bin/aws && chmod 0755 /usr/local/bin/aws
printf '%%s\n' %s >/var/lib/cloud/data/instance-id`, w.state, h.id))
	in := instance{InstanceID: h.id, Tags: map[string]string{"Name": name}, Managed: true}
	in.Exec.Kind = "docker"
	in.Exec.Container = h.container
	in.Exec.AgentCheck = "systemctl is-active --quiet amazon-ssm-agent"
	w.saveInstance(in)
	w.hosts = append(w.hosts, h)
	return h
}

func (h *host) remove() {
	_, _ = runErr(".", nil, "docker", "rm", "-f", "-v", h.container)
	_ = os.RemoveAll(h.dockerDir)
}

// execErr runs a shell script on the host as root.
func (h *host) execErr(script string) (string, error) {
	return runErr(".", nil, "docker", "exec", "-u", "0", h.container, "/bin/sh", "-c", script)
}

func (h *host) exec(script string) string {
	h.w.t.Helper()
	out, err := h.execErr(script)
	if err != nil {
		h.w.t.Fatalf("%s: %s: %v\n%s", h.name, script, err, out)
	}
	return out
}

// load puts images into the host's engine as a registry pull would.
func (h *host) load(refs ...string) {
	t := h.w.t
	save := exec.Command("docker", append([]string{"save"}, refs...)...)
	load := exec.Command("docker", "exec", "-i", h.container, "docker", "load", "-q")
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	var errb strings.Builder
	save.Stderr = &errb
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	out, lerr := load.CombinedOutput()
	serr := save.Wait()
	if serr != nil || lerr != nil {
		t.Fatalf("load %v into %s: save %v %s; load %v %s", refs, h.name, serr, errb.String(), lerr, out)
	}
}

// userData is the README's EC2 user data, as an operator pastes it: the
// first sh block that starts with #!/bin/sh and runs install.sh.
func (w *world) userData() string {
	for _, s := range shBlocks(w.t, filepath.Join(w.root, "README.md")) {
		if strings.HasPrefix(s, "#!/bin/sh\n") && strings.Contains(s, "deploy/install.sh") {
			return s
		}
	}
	w.t.Fatal("README.md has no user data block (a sh block starting with #!/bin/sh that runs deploy/install.sh)")
	return ""
}

// shBlocks are the ```sh blocks of a Markdown file, each ending in a newline.
func shBlocks(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	var blocks, block []string
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !in && strings.HasPrefix(line, "```sh"):
			in, block = true, nil
		case in && strings.HasPrefix(line, "```"):
			in = false
			blocks = append(blocks, strings.Join(block, "\n")+"\n")
		case in:
			block = append(block, line)
		}
	}
	return blocks
}

// bootstrap runs the README's user data on the host the way cloud-init
// does (an executable file, run as root), with the owner filled in, for a
// public repository: the bundle of the latest release is served from the
// release assets this run built (and mywebchat-agent-upgrade is pointed at
// the same stand-in for GitHub's release downloads).
func (h *host) bootstrap() (string, error) {
	ud := h.userData()
	const latest = "https://github.com/" + owner + "/mywebchat/releases/latest/download/mywebchat-host.tar.gz"
	if !strings.Contains(ud, latest) {
		h.w.t.Fatalf("the user data does not fetch %s:\n%s", latest, ud)
	}
	ud = strings.ReplaceAll(ud, latest, "file://"+releasesDir+"/"+h.w.bundleTag()+"/mywebchat-host.tar.gz")
	return h.runUserData(ud, "MYWEBCHAT_RELEASES_URL=file://"+releasesDir)
}

// bootstrapPrivate runs the README's user data as the owner of a private
// repository pastes it: GHCR_TOKEN_PARAM and MYWEBCHAT_BUNDLE_TOKEN_PARAM
// name the SecureStrings with the images' and the releases' tokens, and the
// bundle comes through GitHub's API with the releases' token (the stand-in
// API on the host, fakegithub). mywebchat-agent-upgrade later takes the
// same way.
func (h *host) bootstrapPrivate() (string, error) {
	ud := h.userData()
	for name, param := range map[string]string{"GHCR_TOKEN_PARAM": tokenParam, "MYWEBCHAT_BUNDLE_TOKEN_PARAM": bundleTokenParam} {
		public := "export " + name + "=none\n"
		if !strings.Contains(ud, public) {
			h.w.t.Fatalf("the user data has no line %q to name the token parameter in:\n%s", public, ud)
		}
		ud = strings.Replace(ud, public, "export "+name+"="+param+"\n", 1)
	}
	return h.runUserData(ud, "MYWEBCHAT_GITHUB_API="+githubAPI)
}

// userData is the README's user data with the owner filled in, and the
// latest release's assets where the stand-ins for GitHub serve them.
func (h *host) userData() string {
	w := h.w
	ud := regexp.MustCompile(`\bOWNER\b`).ReplaceAllString(w.userData(), owner)
	dir := releasesDir + "/" + w.bundleTag()
	h.exec("mkdir -p " + dir + " /var/lib/cloud/instance/scripts && printf '%s\\n' " + w.bundleTag() + " >" + releasesDir + "/latest")
	for _, f := range []string{"mywebchat-host.tar.gz", "mywebchat-host.tar.gz.sha256"} {
		run(w.t, ".", "docker", "cp", filepath.Join(w.bundle, f), h.container+":"+dir+"/")
	}
	return ud
}

// runUserData runs ud as cloud-init runs user data: an executable file, as
// root, with env added to the environment.
func (h *host) runUserData(ud string, env ...string) (string, error) {
	w := h.w
	cmd := exec.Command("docker", "exec", "-i", "-u", "0", h.container, "/bin/sh", "-c", "cat >/var/lib/cloud/instance/scripts/part-001 && chmod 0700 /var/lib/cloud/instance/scripts/part-001")
	cmd.Stdin = strings.NewReader(ud)
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("write user data: %v %s", err, out)
	}
	args := []string{"exec", "-u", "0", "-e", "AWS_REGION=" + region}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, h.container, "/var/lib/cloud/instance/scripts/part-001")
	return runErr(".", nil, "docker", args...)
}

// nginxContainer is the host's running nginx container: ID and start time.
func (h *host) nginxContainer() string {
	out, _ := h.execErr("docker inspect --format '{{.Id}} {{.State.StartedAt}}' mywebchat-nginx")
	return strings.TrimSpace(out)
}
