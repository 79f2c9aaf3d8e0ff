//go:build integration

package rehearsal

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mywebchat/mywebchat/test/rehearsal/fakeaws/fakeawstest"
)

// hostModeConfig is an agent.yaml for proxy.mode host: the host's nginx
// (Debian's package, in the stand-in host's image) and the colors' socket
// folder under /run, where that nginx's workers reach it.
const hostModeConfig = `app:
  name: mywebchat
  repository: ghcr.io/` + owner + `/mywebchat-app
  socket_dir: /run/mywebchat
proxy:
  mode: host
`

// hostModeSite is the host nginx's site: the upstream file the agent
// writes (proxy.output's default) and a server that proxies to it.
const hostModeSite = `include /var/lib/deploy-agent/nginx/upstream.conf;
server {
    listen 80 default_server;
    location / {
        proxy_pass http://chat;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}
`

// TestHostModeUnit runs the agent as a proxy.mode host operator does: the
// shipped deploy-agent.service on a stand-in host whose own nginx serves
// the colors. Under the unit alone the first deploy fails (nginx, run in
// the agent's sandbox, cannot test its config); with the shipped host-mode
// drop-in, installed by the command docs/config.md gives, three deploys go
// blue, green, blue, and requests through the host's nginx reach the new
// color each time, also after the host's nginx restarted (a new pid file).
// The host keeps ports under 1024 privileged, as EC2's kernel does.
func TestHostModeUnit(t *testing.T) {
	w := newBareWorld(t)
	w.hostImage = buildHostImage(t, w.root)
	if t.Failed() {
		t.FailNow()
	}
	if _, err := fakeawstest.Build(w.bin); err != nil {
		t.Fatal(err)
	}
	agent := filepath.Join(w.dir, "deploy-agent")
	cmd := exec.Command("go", "build", "-o", agent, "./agent/cmd/deploy-agent")
	cmd.Dir = w.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the agent: %v\n%s", err, out)
	}
	var rels []release
	var tags []string
	for range 3 {
		r := w.buildRelease("")
		rels = append(rels, r)
		tags = append(tags, r.tags()[0])
	}
	h := w.bootHostWith("host-hostmode", "--sysctl", "net.ipv4.ip_unprivileged_port_start=1024")
	h.load(tags...)

	// The bundle's files where the README unpacks it, the agent and the
	// unit installed as install.sh installs them, the config and the
	// host's nginx site; then the agent, then nginx (its site includes the
	// upstream file the agent writes on start).
	h.exec("mkdir -p /opt/mywebchat")
	run(t, ".", "docker", "cp", filepath.Join(w.root, "systemd"), h.container+":/opt/mywebchat/systemd")
	run(t, ".", "docker", "cp", agent, h.container+":/usr/local/bin/deploy-agent")
	h.exec(`set -e
install -m 0644 /opt/mywebchat/systemd/deploy-agent.service /etc/systemd/system/deploy-agent.service
install -d -m 0700 /etc/deploy-agent
cat >/etc/deploy-agent/agent.yaml <<'EOF'
` + hostModeConfig + `EOF
cat >/etc/nginx/sites-enabled/default <<'EOF'
` + hostModeSite + `EOF
systemctl unmask nginx.service
systemctl daemon-reload
systemctl start deploy-agent.service`)

	// The unit alone: nginx's test fails in the sandbox, the deploy with it.
	out, err := h.execErr("deploy-agent deploy --image " + rels[0].app)
	t.Logf("under the unit alone, deploy: %v\n%s", err, out)
	if err == nil {
		t.Fatalf("under the unit alone a host-mode deploy succeeded; the unit's comments say it cannot:\n%s", out)
	}
	if !strings.Contains(out, "nginx config test failed") {
		t.Fatalf("under the unit alone the deploy failed, but not at nginx's test:\n%s", out)
	}

	// With the drop-in, installed as docs/config.md says.
	h.exec("cd /opt/mywebchat && " + hostModeInstallCommand(t, w.root))
	h.exec("systemctl start nginx.service")
	pid := strings.TrimSpace(h.exec("systemctl show -p MainPID --value deploy-agent.service"))
	if c := strings.TrimSpace(h.exec("sed -n 's/^CapBnd:[[:space:]]*//p' /proc/" + pid + "/status")); c != "0000000000000403" {
		t.Errorf("with the host-mode drop-in the agent's capability bounding set is %s, want 0000000000000403 (CAP_CHOWN CAP_DAC_OVERRIDE CAP_NET_BIND_SERVICE)", c)
	}
	for i, want := range []string{"blue", "green", "blue"} {
		if i == 2 {
			h.exec("systemctl restart nginx.service")
		}
		if out, err := h.execErr("deploy-agent deploy --image " + rels[i].app); err != nil {
			t.Fatalf("deploy %d (%s) under the unit with the host-mode drop-in: %v\n%s\nagent's journal:\n%s", i+1, want, err, out,
				h.exec("journalctl -u deploy-agent.service --no-pager -n 40"))
		}
		if st := h.status(t); st.Active == nil || st.Active.Color != want || st.Active.Image != rels[i].app {
			t.Fatalf("deploy %d: active release %+v, want %s on %s", i+1, st.Active, rels[i].app, want)
		}
		for n := range 5 {
			var hz struct{ Status, Color string }
			body := get(t, h.base()+"/healthz")
			if err := json.Unmarshal([]byte(body), &hz); err != nil || hz.Status != "ok" || hz.Color != want {
				t.Fatalf("deploy %d: request %d through the host's nginx got %q, want status ok from %s", i+1, n+1, body, want)
			}
		}
	}
	if up := h.exec("cat /var/lib/deploy-agent/nginx/upstream.conf"); !strings.Contains(up, "server unix:/run/mywebchat/blue.sock") {
		t.Errorf("the upstream file does not name blue's socket under /run/mywebchat:\n%s", up)
	}
}

// hostModeInstallCommand is the command docs/config.md gives to install
// the host-mode drop-in: the sh block that names it.
func hostModeInstallCommand(t *testing.T, root string) string {
	t.Helper()
	for _, s := range shBlocks(t, filepath.Join(root, "docs/config.md")) {
		if strings.Contains(s, "systemd/deploy-agent-host-mode.conf") {
			return s
		}
	}
	t.Fatal("docs/config.md has no sh block installing systemd/deploy-agent-host-mode.conf")
	return ""
}
