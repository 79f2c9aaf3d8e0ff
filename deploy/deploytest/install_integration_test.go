//go:build integration

package deploytest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeToken is what the fake `aws ssm get-parameter` returns (until
// /tmp/rotated holds another); it must reach only the credential helper's
// answer and appear nowhere else: no file, argument or output.
const fakeToken = "ghp_deliveryTestToken0123456789abcdefXYZ"

// installStubs stand in for the host's tools inside a throwaway container:
// they record their arguments.
var installStubs = map[string]string{
	"docker": `#!/bin/sh
echo "docker $*" >>/tmp/calls
`,
	"aws": `#!/bin/sh
echo "aws $*" >>/tmp/calls
case "$*" in
*current-release*)
	echo "An error occurred (ParameterNotFound) when calling the GetParameter operation: " >&2
	exit 254
	;;
ssm\ get-parameter*) if [ -f /tmp/rotated ]; then cat /tmp/rotated; else printf '%s\n' "` + fakeToken + `"; fi ;;
esac
`,
	"systemctl": `#!/bin/sh
echo "systemctl $*" >>/tmp/calls
case "$1" in is-active) exit 3 ;; esac
`,
	"curl": `#!/bin/sh
echo "curl $*" >>/tmp/calls
exit 7
`,
	"deploy-agent": `#!/bin/sh
echo "deploy-agent $*" >>/tmp/calls
case "$1" in version) echo stub-1 ;; esac
`,
}

// installCheck runs install.sh twice the way a re-run on a host would, with
// an operator's edit in between, and checks the host it leaves behind.
const installCheck = `set -eu
fail() { echo "CHECK FAILED: $*"; exit 1; }
export PATH=/stubs:$PATH MYWEBCHAT_OWNER=acme AWS_REGION=eu-west-1 AGENT_BINARY=/stubs/deploy-agent
mkdir -p /var/lib/cloud/data && echo i-0123456789abcdef0 >/var/lib/cloud/data/instance-id
sh /bundle/deploy/install.sh >/tmp/out1 2>&1 || { cat /tmp/out1; fail "first run"; }
grep -q 'ghcr.io/acme/mywebchat-app' /etc/deploy-agent/agent.yaml || fail "agent.yaml does not name ghcr.io/acme"
[ "$(stat -c %a /etc/deploy-agent/agent.yaml)" = 600 ] || fail "agent.yaml mode"
[ "$(stat -c %a /etc/deploy-agent)" = 700 ] || fail "/etc/deploy-agent mode"
[ "$(stat -c %a /etc/deploy-agent/docker/config.json)" = 600 ] || fail "registry auth mode"
[ -f /etc/deploy-agent/registry-auth.json ] || fail "registry-auth.json missing"
for f in /etc/deploy-agent/registry-auth.json /root/.docker/config.json; do
	[ "$(cat $f)" = '{"credHelpers":{"ghcr.io":"mywebchat-ssm"}}' ] || fail "$f does not send ghcr.io to the helper"
done
[ -x /usr/local/bin/docker-credential-mywebchat-ssm ] || fail "credential helper not installed"
grep -qx 'GHCR_TOKEN_PARAM=/mywebchat/ghcr-pull-token' /etc/mywebchat/registry.env || fail "registry.env: parameter"
grep -qx 'AWS_REGION=eu-west-1' /etc/mywebchat/registry.env || fail "registry.env: region"
grep -q -- 'ssm get-parameter --region eu-west-1 --name /mywebchat/ghcr-pull-token --with-decryption' /tmp/calls || fail "install did not check the parameter with --with-decryption"
grep -q 'docker login' /tmp/calls && fail "install stored a token with docker login"
# Rotation: the next pull's answer carries the new token; nothing on the host changed.
printf 'ghp_rotatedToken\n' >/tmp/rotated
printf 'ghcr.io\n' | docker-credential-mywebchat-ssm get >/tmp/answer || fail "helper get after rotation"
[ "$(cat /tmp/answer)" = '{"ServerURL":"ghcr.io","Username":"acme","Secret":"ghp_rotatedToken"}' ] || fail "helper answer after rotation: $(cat /tmp/answer)"
rm /tmp/rotated /tmp/answer
for u in deploy-agent mywebchat-nginx mywebchat-redis; do [ -f /etc/systemd/system/$u.service ] || fail "unit $u"; done
[ -x /usr/local/bin/deploy-agent ] || fail "agent binary"
[ -x /usr/local/sbin/mywebchat-nginx-update ] || fail "nginx update script"
grep -q '^NGINX_IMAGE=ghcr.io/acme/mywebchat-nginx:latest$' /etc/mywebchat/nginx.env || fail "nginx.env"
[ -x /etc/letsencrypt/renewal-hooks/deploy/mywebchat-nginx-reload ] || fail "certbot deploy hook"
grep -q 'systemctl restart deploy-agent.service' /tmp/calls || fail "first run did not start the agent"
grep -q 'CHAT_REDIS_URL' /etc/deploy-agent/agent.yaml && fail "CHAT_REDIS_URL kept without Redis"
grep -q '"live-restore": true' /etc/docker/daemon.json || fail "daemon.json without live-restore"
grep -q 'aws ec2 create-tags --resources i-0123456789abcdef0 --tags Key=App,Value=mywebchat' /tmp/calls || fail "the instance was not tagged as a deploy target"
grep -q '^NGINX_NOFILE=[0-9]' /etc/mywebchat/nginx.env || fail "nginx.env without NGINX_NOFILE"
[ -x /usr/local/sbin/mywebchat-nginx-run ] || fail "nginx run script"
echo '# operator edit' >>/etc/deploy-agent/agent.yaml
: >/tmp/calls
sh /bundle/deploy/install.sh >/tmp/out2 2>&1 || { cat /tmp/out2; fail "second run"; }
grep -q '# operator edit' /etc/deploy-agent/agent.yaml || fail "re-run overwrote agent.yaml"
grep -q 'reload docker' /tmp/calls && fail "re-run reloaded the engine for an unchanged daemon.json"
grep -q 'daemon-reload' /tmp/calls && fail "re-run reloaded unchanged units"
grep -q 'systemctl restart deploy-agent' /tmp/calls && fail "re-run restarted an unchanged agent"
grep -q 'systemctl start deploy-agent.service' /tmp/calls || fail "re-run did not ensure the agent runs"
if grep -rq "` + fakeToken + `" /tmp/out1 /tmp/out2 /tmp/calls /etc /root /usr/local /var/lib 2>/dev/null; then fail "the token leaked into a file, output or argv"; fi
# With Redis: the colors join its network and name it; the config stays strict YAML.
rm /etc/deploy-agent/agent.yaml
echo 'NGINX_OPTS=--memory 256m' >>/etc/mywebchat/nginx.env
# Behind a load balancer without its ranges: a clear error, and nothing changed.
cp /etc/mywebchat/nginx.env /tmp/nginx.env.before
if MYWEBCHAT_BEHIND_LB=1 sh /bundle/deploy/install.sh >/tmp/out-nocidr 2>&1; then fail "behind a load balancer without MYWEBCHAT_LB_CIDR: accepted"; fi
grep -q 'needs MYWEBCHAT_LB_CIDR' /tmp/out-nocidr || fail "no clear error without MYWEBCHAT_LB_CIDR: $(cat /tmp/out-nocidr)"
[ ! -e /etc/mywebchat/listen.conf ] && [ ! -e /etc/mywebchat/lb.env ] && cmp -s /tmp/nginx.env.before /etc/mywebchat/nginx.env || fail "the refused run changed the host"
MYWEBCHAT_REDIS=1 MYWEBCHAT_BEHIND_LB=1 MYWEBCHAT_LB_CIDR=10.0.0.0/16,10.1.0.0/24 sh /bundle/deploy/install.sh >/tmp/out3 2>&1 || { cat /tmp/out3; fail "run with Redis"; }
grep -q '^keepalive_timeout 0;' /etc/mywebchat/listen.conf || fail "behind a load balancer: listen.conf"
[ "$(grep '^set_real_ip_from' /etc/mywebchat/listen.conf)" = "$(printf 'set_real_ip_from 10.0.0.0/16;\nset_real_ip_from 10.1.0.0/24;')" ] || fail "listen.conf trusts other than the balancer's ranges: $(grep set_real_ip_from /etc/mywebchat/listen.conf)"
grep -q '^NGINX_OPTS=--memory 256m -v /etc/mywebchat/listen.conf:/etc/nginx/mywebchat/listen.conf:ro$' /etc/mywebchat/nginx.env || fail "behind a load balancer: NGINX_OPTS"
MYWEBCHAT_BEHIND_LB=1 sh /bundle/deploy/install.sh >/tmp/out4 2>&1 || { cat /tmp/out4; fail "re-run behind a load balancer"; }
[ "$(grep -c '^NGINX_OPTS=' /etc/mywebchat/nginx.env)" = 1 ] && [ "$(grep -o 'listen.conf:ro' /etc/mywebchat/nginx.env | wc -l)" = 1 ] || fail "re-run added the mount twice"
grep -q '^set_real_ip_from 10.1.0.0/24;' /etc/mywebchat/listen.conf || fail "a re-run without MYWEBCHAT_LB_CIDR lost the balancer's ranges"
# A range that would trust everyone is refused, and the host keeps its file.
cp /etc/mywebchat/listen.conf /tmp/listen.before
if MYWEBCHAT_BEHIND_LB=1 MYWEBCHAT_LB_CIDR=0.0.0.0/0 sh /bundle/deploy/install.sh >/tmp/out5 2>&1; then fail "MYWEBCHAT_LB_CIDR=0.0.0.0/0 accepted"; fi
grep -q "'0.0.0.0/0': an IPv4 prefix must be /8 to /32" /tmp/out5 || fail "no clear error for 0.0.0.0/0: $(cat /tmp/out5)"
cmp -s /tmp/listen.before /etc/mywebchat/listen.conf && grep -q '^MYWEBCHAT_LB_CIDR=10.0.0.0/16,10.1.0.0/24$' /etc/mywebchat/lb.env || fail "the refused range changed the host"
grep -q 'CHAT_REDIS_URL: "redis://mywebchat-redis:6379/0"' /etc/deploy-agent/agent.yaml || fail "Redis URL not rewritten"
grep -q '^  network: mywebchat ' /etc/deploy-agent/agent.yaml || fail "app.network not set"
grep -q 'systemctl enable --now mywebchat-redis.service' /tmp/calls || fail "Redis unit not enabled"
echo ALL-CHECKS-PASSED
`

// TestInstallScript runs deploy/install.sh in a throwaway Debian container
// with stand-ins for docker, aws, systemctl and the agent: it must lay out
// the host, keep the GHCR token off it (a credential helper reads it for each
// pull, so a rotation needs nothing on the host), and be idempotent.
func TestInstallScript(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if _, err := docker(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		t.Fatalf("docker engine unreachable (run scripts/setup.sh): %v", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	stubs := t.TempDir()
	for name, body := range installStubs {
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	name := "mywebchat-delivery-test-install-" + randSuffix(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		docker(ctx, "rm", "-f", name)
	})
	out, err := docker(ctx, "run", "--rm", "--name", name, "--network", "none",
		"-v", root+":/bundle:ro", "-v", stubs+":/stubs:ro",
		envOr("NGINX_IMAGE", "mywebchat/debian-base:local"), "sh", "-c", installCheck)
	if err != nil || !strings.Contains(out, "ALL-CHECKS-PASSED") {
		t.Fatalf("install.sh checks: %v\n%s", err, out)
	}
}
