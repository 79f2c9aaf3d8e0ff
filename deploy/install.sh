#!/bin/sh
# install.sh bootstraps a MyWebChat host (Amazon Linux 2023 or Ubuntu 24.04)
# as root: Docker, the deploy agent, its config and the nginx template, the
# systemd units, the GHCR credentials (a credential helper that reads the
# pull-only token from SSM Parameter Store for every pull), then starts everything. Idempotent: run it again to upgrade the
# agent or repair a host; files an operator edited (agent.yaml, env files)
# are kept.
#
# It runs from an unpacked host bundle (the release's mywebchat-host.tar.gz,
# or a checkout with the agent built into bin/), e.g. as EC2 user data:
#
#   mkdir -p /opt/mywebchat && cd /opt/mywebchat &&
#   curl -fsSL https://github.com/OWNER/mywebchat/releases/latest/download/mywebchat-host.tar.gz | tar -xz &&
#   MYWEBCHAT_OWNER=OWNER GHCR_USER=OWNER sh deploy/install.sh
#
# Settings (environment):
#   MYWEBCHAT_OWNER   GitHub owner of the images, lower case (required)
#   GHCR_USER         user name for GHCR pulls (default: MYWEBCHAT_OWNER)
#   GHCR_TOKEN_PARAM  SSM SecureString with a read:packages token
#                     (default /mywebchat/ghcr-pull-token); "none": anonymous pulls
#   AGENT_BINARY      deploy-agent binary to install (default: bin/deploy-agent-linux-ARCH
#                     of the bundle, else bin/deploy-agent)
#   NGINX_IMAGE       first nginx image (default: the recorded release's, else
#                     ghcr.io/OWNER/mywebchat-nginx:latest; releases pin it afterwards)
#   NGINX_NOFILE      the nginx container's open-files limit (default 65536, or the
#                     system's hard limit when that is lower)
#   MYWEBCHAT_RELEASE_PARAM  SSM parameter where release.yml records the current
#                     release (default /mywebchat/current-release); a host with no
#                     release yet deploys it before it becomes a deploy target;
#                     "none" skips that
#   MYWEBCHAT_DEPLOY_TAG  KEY=VALUE: the instance tag release.yml deploys to
#                     (default App=mywebchat), set on this instance as the last
#                     step, once the host runs the current release; "none" skips it
#   MYWEBCHAT_REDIS   1 to run the Redis container and point the chat at it
#   MYWEBCHAT_BEHIND_LB 1 when the host is a load balancer's target (a fleet):
#                     nginx closes connections after each response (no 502s
#                     on reloads) and takes user addresses from X-Forwarded-For
#   MYWEBCHAT_LB_CIDR with MYWEBCHAT_BEHIND_LB=1 (required the first time, then
#                     kept in /etc/mywebchat/lb.env): the ranges the balancer
#                     connects from, its subnets or the VPC's, comma separated,
#                     e.g. 10.0.0.0/16. X-Forwarded-For from anyone else is ignored.
#   AWS_REGION        region of the parameter (default: the instance's region)
#   MYWEBCHAT_RELEASES_URL, MYWEBCHAT_REPO, MYWEBCHAT_GITHUB_API,
#   MYWEBCHAT_BUNDLE_TOKEN_PARAM  where and how mywebchat-agent-upgrade
#                     fetches a release's bundle (see deploy/agent-upgrade.sh)
#
# The settings are recorded in /etc/mywebchat/host.env (nothing secret), from
# which mywebchat-agent-upgrade re-runs a newer bundle's install.sh.
set -eu

log() { printf 'install: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "run as root"
bundle=$(cd "$(dirname "$0")/.." && pwd)
owner=${MYWEBCHAT_OWNER:-}
[ -n "$owner" ] || die "set MYWEBCHAT_OWNER to the GitHub owner of the images"
case "$owner" in
*[!a-z0-9-]*) die "MYWEBCHAT_OWNER must be lower case letters, digits and dashes, as GHCR spells it" ;;
esac
ghcr_user=${GHCR_USER:-$owner}
token_param=${GHCR_TOKEN_PARAM:-/mywebchat/ghcr-pull-token}
nginx_image=${NGINX_IMAGE:-ghcr.io/$owner/mywebchat-nginx:latest}
redis=${MYWEBCHAT_REDIS:-0}
release_param=${MYWEBCHAT_RELEASE_PARAM:-/mywebchat/current-release}
deploy_tag=${MYWEBCHAT_DEPLOY_TAG:-App=mywebchat}
case "$deploy_tag" in
none) ;;
?*=*) ;;
*) die "MYWEBCHAT_DEPLOY_TAG must be KEY=VALUE or none, got '$deploy_tag'" ;;
esac
behind_lb=${MYWEBCHAT_BEHIND_LB:-0}

# Behind a load balancer, nginx believes X-Forwarded-For only from the
# balancer's ranges. Checked before anything on the host changes.
lb_listen=''
if [ "$behind_lb" = 1 ]; then
	lb_cidr=${MYWEBCHAT_LB_CIDR:-}
	if [ -z "$lb_cidr" ] && [ -f /etc/mywebchat/lb.env ]; then
		lb_cidr=$(sed -n 's/^MYWEBCHAT_LB_CIDR=//p' /etc/mywebchat/lb.env)
	fi
	[ -n "$lb_cidr" ] || die "MYWEBCHAT_BEHIND_LB=1 needs MYWEBCHAT_LB_CIDR: the address ranges the load balancer connects from (its subnets, or the VPC's range), e.g. MYWEBCHAT_LB_CIDR=10.0.0.0/16; X-Forwarded-For is believed from them only"
	lb_listen=$(mktemp)
	trap 'rm -f "$lb_listen"' EXIT
	sh "$bundle/deploy/nginx-lb-listen.sh" "$lb_cidr" "$bundle/nginx-templates/listen-behind-lb.conf" >"$lb_listen" ||
		die "MYWEBCHAT_LB_CIDR=$lb_cidr is not usable (see above); nothing was changed"
fi

# --- packages -------------------------------------------------------------
os_id=unknown
if [ -r /etc/os-release ]; then
	# shellcheck disable=SC1091 # present on every supported system
	os_id=$(. /etc/os-release && printf '%s' "$ID")
fi
case "$os_id" in
amzn)
	command -v docker >/dev/null 2>&1 || dnf install -y -q docker
	command -v aws >/dev/null 2>&1 || dnf install -y -q awscli-2
	command -v curl >/dev/null 2>&1 || dnf install -y -q curl-minimal
	;;
ubuntu | debian)
	if ! command -v docker >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io curl ca-certificates >/dev/null
	fi
	if ! command -v aws >/dev/null 2>&1; then
		snap install aws-cli --classic >/dev/null
	fi
	;;
*) die "unsupported system '$os_id' (Amazon Linux 2023 or Ubuntu 24.04)" ;;
esac
# live-restore keeps the containers (nginx, both colors) running while the
# engine itself restarts or upgrades; bounded logs keep the disk from filling.
# An operator's own daemon.json is left alone.
if [ ! -e /etc/docker/daemon.json ]; then
	install -d -m 0755 /etc/docker
	printf '%s\n' '{"live-restore": true, "log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}' >/etc/docker/daemon.json
	# Both options are reloadable: no engine restart needed.
	! systemctl is-active --quiet docker.service || systemctl reload docker.service >/dev/null
fi
systemctl enable --now docker.service >/dev/null

# --- the agent --------------------------------------------------------------
case "$(uname -m)" in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) die "unsupported architecture $(uname -m)" ;;
esac
agent=${AGENT_BINARY:-}
if [ -z "$agent" ]; then
	for c in "$bundle/bin/deploy-agent-linux-$arch" "$bundle/bin/deploy-agent"; do
		if [ -x "$c" ]; then
			agent=$c
			break
		fi
	done
fi
[ -x "${agent:-/nonexistent}" ] || die "no deploy-agent binary: set AGENT_BINARY or unpack the host bundle"
agent_changed=0
if ! cmp -s "$agent" /usr/local/bin/deploy-agent; then
	agent_changed=1
	install -m 0755 "$agent" /usr/local/bin/deploy-agent.new
	mv -f /usr/local/bin/deploy-agent.new /usr/local/bin/deploy-agent
	log "installed deploy-agent $(/usr/local/bin/deploy-agent version 2>/dev/null || echo '?')"
fi
install -m 0755 "$bundle/deploy/nginx-update.sh" /usr/local/sbin/mywebchat-nginx-update
install -m 0755 "$bundle/deploy/nginx-run.sh" /usr/local/sbin/mywebchat-nginx-run
install -m 0755 "$bundle/deploy/agent-upgrade.sh" /usr/local/sbin/mywebchat-agent-upgrade

# --- AWS: region, instance, the recorded release ---------------------------------
imds_token=""
imds() { # imds PATH: instance metadata (IMDSv2)
	[ -n "$imds_token" ] || imds_token=$(curl -fsS -m 2 -X PUT http://169.254.169.254/latest/api/token \
		-H 'X-aws-ec2-metadata-token-ttl-seconds: 300') || return 1
	curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $imds_token" "http://169.254.169.254/latest/meta-data/$1"
}
region=${AWS_REGION:-}
if [ -z "$region" ]; then
	region=$(imds placement/region) || die "AWS_REGION unset and the instance metadata service is unreachable"
fi
export AWS_REGION="$region"
# The release the fleet runs (release.yml records it after each successful
# rollout): {"app": REF, "nginx": REF, ...}. Each reference must have the
# shape the SSM document admits.
release_app=""
release_nginx=""
if [ "$release_param" != none ]; then
	if release=$(aws ssm get-parameter --name "$release_param" --query Parameter.Value --output text 2>/tmp/mywebchat-release.err); then
		release_app=$(printf '%s' "$release" | sed -n 's/.*"app": *"\([^"]*\)".*/\1/p')
		release_nginx=$(printf '%s' "$release" | sed -n 's/.*"nginx": *"\([^"]*\)".*/\1/p')
		printf '%s\n' "$release_app" | grep -Eqx "ghcr\.io/$owner/mywebchat-app(@sha256:[0-9a-f]{64}|:sha-[0-9a-f]{40})" ||
			die "$release_param holds no valid app image: '$release'"
		if [ -n "$release_nginx" ]; then
			printf '%s\n' "$release_nginx" | grep -Eqx "ghcr\.io/$owner/mywebchat-nginx(@sha256:[0-9a-f]{64}|:sha-[0-9a-f]{40})" ||
				die "$release_param holds no valid nginx image: '$release'"
		fi
		log "current release: $release_app (nginx: ${release_nginx:-not recorded})"
	elif grep -q ParameterNotFound /tmp/mywebchat-release.err; then
		log "no release recorded in $release_param yet: nginx shows its page until the first rollout"
	else
		cat /tmp/mywebchat-release.err >&2
		die "could not read $release_param"
	fi
	rm -f /tmp/mywebchat-release.err
fi
[ -n "${NGINX_IMAGE:-}" ] || [ -z "$release_nginx" ] || nginx_image=$release_nginx

# --- config -------------------------------------------------------------------
install -d -m 0700 /etc/deploy-agent
install -d -m 0755 /etc/mywebchat /etc/mywebchat/nginx /var/lib/mywebchat/acme
install -m 0644 "$bundle/nginx-templates/upstream.conf.tmpl" /etc/deploy-agent/upstream.conf.tmpl
if [ ! -f /etc/deploy-agent/agent.yaml ]; then
	sed "s#ghcr.io/owner/#ghcr.io/$owner/#; s#ghcr.io/OWNER/#ghcr.io/$owner/#" "$bundle/deploy/agent.yaml" >/etc/deploy-agent/agent.yaml.new
	if [ "$redis" = 1 ]; then
		# The colors join the network mywebchat-redis.service runs on and
		# reach it by name; nothing of Redis is published on the host.
		sed -i 's#redis://127.0.0.1:6379#redis://mywebchat-redis:6379#; /CHAT_REDIS_URL/a\
  network: mywebchat                        # the colors join it; Redis is on it' /etc/deploy-agent/agent.yaml.new
	else
		# No Redis: the chat keeps rooms in process and hands them over on deploys.
		sed -i '/CHAT_REDIS_URL/d' /etc/deploy-agent/agent.yaml.new
	fi
	chmod 0600 /etc/deploy-agent/agent.yaml.new
	mv /etc/deploy-agent/agent.yaml.new /etc/deploy-agent/agent.yaml
	log "wrote /etc/deploy-agent/agent.yaml"
fi
# What this host was bootstrapped with, for mywebchat-agent-upgrade's re-run
# of a newer bundle's install.sh. Rewritten on every run; nothing secret.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
	printf '# Written by install.sh: the settings mywebchat-agent-upgrade installs with.\n'
	printf 'MYWEBCHAT_OWNER=%s\nGHCR_USER=%s\nGHCR_TOKEN_PARAM=%s\n' "$(q "$owner")" "$(q "$ghcr_user")" "$(q "$token_param")"
	printf 'MYWEBCHAT_RELEASE_PARAM=%s\nMYWEBCHAT_DEPLOY_TAG=%s\n' "$(q "$release_param")" "$(q "$deploy_tag")"
	printf 'MYWEBCHAT_REDIS=%s\nMYWEBCHAT_BEHIND_LB=%s\nAWS_REGION=%s\n' "$(q "$redis")" "$(q "$behind_lb")" "$(q "$region")"
	[ -z "${MYWEBCHAT_RELEASES_URL:-}" ] || printf 'MYWEBCHAT_RELEASES_URL=%s\n' "$(q "$MYWEBCHAT_RELEASES_URL")"
	[ -z "${MYWEBCHAT_REPO:-}" ] || printf 'MYWEBCHAT_REPO=%s\n' "$(q "$MYWEBCHAT_REPO")"
	[ -z "${MYWEBCHAT_GITHUB_API:-}" ] || printf 'MYWEBCHAT_GITHUB_API=%s\n' "$(q "$MYWEBCHAT_GITHUB_API")"
	[ -z "${MYWEBCHAT_BUNDLE_TOKEN_PARAM:-}" ] || printf 'MYWEBCHAT_BUNDLE_TOKEN_PARAM=%s\n' "$(q "$MYWEBCHAT_BUNDLE_TOKEN_PARAM")"
} >/etc/mywebchat/host.env.new
chmod 0644 /etc/mywebchat/host.env.new
mv -f /etc/mywebchat/host.env.new /etc/mywebchat/host.env
[ -f /etc/mywebchat/app.env ] || install -m 0600 /dev/null /etc/mywebchat/app.env
[ -f /etc/default/deploy-agent ] || printf '# Environment for deploy-agent.service, e.g. DEPLOY_AGENT_CONFIG=...\n' >/etc/default/deploy-agent
if [ ! -f /etc/mywebchat/nginx.env ]; then
	# Open files: 65536, or what the system allows when that is less (the
	# engine cannot raise a container above its own hard limit).
	nofile=${NGINX_NOFILE:-65536}
	hard=$(awk '/^Max open files/ {print $5}' /proc/self/limits)
	if [ "$hard" != unlimited ] && [ "$hard" -lt "$nofile" ]; then
		nofile=$hard
	fi
	printf '# Written by install.sh; mywebchat-nginx-update pins releases here.\nNGINX_IMAGE=%s\nNGINX_NOFILE=%s\n' "$nginx_image" "$nofile" >/etc/mywebchat/nginx.env
fi
# A connection queued on the listener of an nginx that an update retires
# moves to its successor's instead of being reset (both listen with reuseport).
install -d -m 0755 /etc/sysctl.d
printf 'net.ipv4.tcp_migrate_req = 1\n' >/etc/sysctl.d/60-mywebchat.conf
if [ "$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null)" != 1 ]; then
	sysctl -q -w net.ipv4.tcp_migrate_req=1 || log "could not set net.ipv4.tcp_migrate_req=1 (needs Linux 5.14): an nginx update may reset a few connections"
fi
# A load balancer's target: the listen file of nginx-templates/listen-behind-lb.conf with the
# balancer's ranges, mounted through the unit's NGINX_OPTS (kept flags stay). Applied on re-runs too.
nginx_changed=0
if [ "$behind_lb" = 1 ]; then
	printf '# Written by install.sh: the ranges the load balancer connects from.\nMYWEBCHAT_LB_CIDR=%s\n' "$lb_cidr" >/etc/mywebchat/lb.env
	if ! cmp -s "$lb_listen" /etc/mywebchat/listen.conf; then
		install -m 0644 "$lb_listen" /etc/mywebchat/listen.conf
		nginx_changed=1
	fi
	mount_opt='-v /etc/mywebchat/listen.conf:/etc/nginx/mywebchat/listen.conf:ro'
	if ! grep -q '^NGINX_OPTS=.*/etc/mywebchat/listen.conf:' /etc/mywebchat/nginx.env; then
		if grep -q '^NGINX_OPTS=' /etc/mywebchat/nginx.env; then
			sed -i "s#^NGINX_OPTS=\(.*\)\$#NGINX_OPTS=\1 $mount_opt#" /etc/mywebchat/nginx.env
		else
			printf 'NGINX_OPTS=%s\n' "$mount_opt" >>/etc/mywebchat/nginx.env
		fi
		nginx_changed=1
	fi
fi

# --- registry credentials -------------------------------------------------------
# No token is stored on the host: docker-credential-mywebchat-ssm reads it from
# Parameter Store for every pull (the agent's and the docker CLI's alike), so
# rotating it is one put-parameter. registry.env says where it lives; the
# config.json below sends ghcr.io to the helper. The token goes from aws's
# stdout to the helper's stdout only: never argv, the environment, a file or the log.
install -m 0755 "$bundle/deploy/docker-credential-mywebchat-ssm.sh" /usr/local/bin/docker-credential-mywebchat-ssm
if [ "$token_param" != none ]; then
	printf '# Written by install.sh for docker-credential-mywebchat-ssm (nothing secret).\nGHCR_USER=%s\nGHCR_TOKEN_PARAM=%s\nAWS_REGION=%s\n' \
		"$ghcr_user" "$token_param" "$region" >/etc/mywebchat/registry.env.new
	chmod 0644 /etc/mywebchat/registry.env.new
	mv -f /etc/mywebchat/registry.env.new /etc/mywebchat/registry.env
	# The parameter must be readable now, not at the first deploy.
	printf 'ghcr.io\n' | /usr/local/bin/docker-credential-mywebchat-ssm get >/dev/null ||
		die "cannot read the GHCR token (parameter $token_param in $region)"
	helper_conf='{"credHelpers":{"ghcr.io":"mywebchat-ssm"}}'
	install -d -m 0700 /etc/deploy-agent/docker /root/.docker
	for f in /etc/deploy-agent/docker/config.json /root/.docker/config.json; do
		# Replaces a config.json holding a token from an older install.
		printf '%s\n' "$helper_conf" >"$f.new"
		chmod 0600 "$f.new"
		mv -f "$f.new" "$f"
	done
	ln -sf docker/config.json /etc/deploy-agent/registry-auth.json
	log "ghcr.io pulls as $ghcr_user with the token in $token_param (read for each pull)"
fi

# --- certbot renewal hook ---------------------------------------------------------
# certbot (its own timer) renews; the hook reloads nginx, which keeps every
# connection open.
install -d -m 0755 /etc/letsencrypt/renewal-hooks/deploy
cat >/etc/letsencrypt/renewal-hooks/deploy/mywebchat-nginx-reload <<'HOOK'
#!/bin/sh
exec systemctl reload mywebchat-nginx.service
HOOK
chmod 0755 /etc/letsencrypt/renewal-hooks/deploy/mywebchat-nginx-reload

# --- units ---------------------------------------------------------------------------
changed=0
for unit in deploy-agent.service mywebchat-nginx.service mywebchat-redis.service; do
	if ! cmp -s "$bundle/systemd/$unit" "/etc/systemd/system/$unit"; then
		install -m 0644 "$bundle/systemd/$unit" "/etc/systemd/system/$unit"
		changed=1
		[ "$unit" != deploy-agent.service ] || agent_changed=1
	fi
done
[ "$changed" -eq 0 ] || systemctl daemon-reload
if [ "$redis" = 1 ]; then
	systemctl enable --now mywebchat-redis.service
fi
systemctl enable deploy-agent.service mywebchat-nginx.service >/dev/null
# A re-run restarts the agent only for a new binary or unit (a restart waits
# for a deploy in progress to finish its current step; state is on disk).
if [ "$agent_changed" -eq 1 ]; then
	systemctl restart deploy-agent.service
else
	systemctl start deploy-agent.service
fi
if [ "$nginx_changed" -eq 1 ] && systemctl is-active --quiet mywebchat-nginx.service; then
	# Open WebSockets reconnect once and resume; plain requests are not lost.
	systemctl restart mywebchat-nginx.service
else
	systemctl start mywebchat-nginx.service
fi
/usr/local/bin/deploy-agent validate || die "deploy-agent validate failed; fix /etc/deploy-agent/agent.yaml"

# --- the current release, then a deploy target -----------------------------------------
# A host with no release yet (a new one) deploys the recorded one first, so it
# never joins the fleet serving the "back in a moment" page.
if [ -n "$release_app" ] && /usr/local/bin/deploy-agent status --json | grep -q '"active":null'; then
	log "deploying the current release $release_app"
	/usr/local/bin/deploy-agent deploy --image "$release_app" --wait=true --timeout 10m ||
		die "the current release did not deploy (deploy-agent exit code $?); the host is not a deploy target"
	if [ -n "$release_nginx" ]; then
		/usr/local/sbin/mywebchat-nginx-update "$release_nginx" ||
			die "nginx did not switch to $release_nginx; the host is not a deploy target"
	fi
fi
# Only now may release.yml deploy here (it selects hosts by this tag).
if [ "$deploy_tag" != none ]; then
	instance=$(cat /var/lib/cloud/data/instance-id 2>/dev/null || imds instance-id) ||
		die "no instance id (cloud-init's /var/lib/cloud/data/instance-id, or the metadata service)"
	aws ec2 create-tags --resources "$instance" --tags "Key=${deploy_tag%%=*},Value=${deploy_tag#*=}" ||
		die "could not tag $instance $deploy_tag (the instance profile needs ec2:CreateTags on itself)"
	log "tagged $instance $deploy_tag: release.yml deploys here from now on"
fi
log "ready: deploy-agent status"
/usr/local/bin/deploy-agent status || true
