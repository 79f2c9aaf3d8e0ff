#!/bin/sh
# setup.sh installs and starts what MyWebChat's demo and tests need on a
# Debian machine: a Docker engine, nginx, Redis, Chromium, the browser driver
# and linters. It is idempotent: whatever is already there is left alone.
# On a machine where Docker already runs (a laptop, a host with systemd) it
# only checks that the engine answers.
set -eu

log() { printf 'setup: %s\n' "$*" >&2; }

# Each tool is checked by its command, so a machine that already has it in
# another form (Docker CE, a distribution's nginx) keeps what it has.
need_pkgs=""
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || need_pkgs="$need_pkgs $2"
}
want dockerd docker.io
want nginx nginx-light
want redis-server redis-server
want chromium chromium
want debootstrap debootstrap
want shellcheck shellcheck
want wrk wrk
want curl curl
# SSM checks parameters with Java's regex engine; the rehearsal asks the JDK itself.
want javac default-jdk-headless
# release.yml's rollout step (run by the rehearsal) uses jq, as GitHub's runners have it.
want jq jq
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_pkgs="$need_pkgs ca-certificates"
if [ -n "$need_pkgs" ]; then
	if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		log "missing packages:$need_pkgs; install them (Debian/Ubuntu: apt-get install$need_pkgs) and run again"
		exit 1
	fi
	log "installing:$need_pkgs"
	apt-get update -qq
	# shellcheck disable=SC2086 # a word list on purpose
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_pkgs >/dev/null
fi

# The Docker engine. Where no init system runs it, start dockerd ourselves.
if ! docker info >/dev/null 2>&1; then
	log "starting dockerd"
	mkdir -p /var/log
	nohup dockerd --iptables=false >/var/log/dockerd.log 2>&1 &
	i=0
	until docker info >/dev/null 2>&1; do
		i=$((i + 1))
		if [ "$i" -gt 60 ]; then
			log "dockerd did not answer within 30s; see /var/log/dockerd.log"
			exit 1
		fi
		sleep 0.5
	done
fi

# Browser driver and accessibility rules for the browser tests (Chromium comes from Debian).
if [ -f test/browser/package.json ] && { [ ! -d test/browser/node_modules/playwright-core ] || [ ! -d test/browser/node_modules/axe-core ]; }; then
	log "installing playwright-core and axe-core"
	(cd test/browser && npm ci --no-audit --no-fund --silent)
fi

# The AWS templates' tests: cfn-lint, moto (moto_server stands in for AWS) and
# the AWS CLI that deploy/aws/up.sh drives. They are Python tools.
need_py=""
command -v cfn-lint >/dev/null 2>&1 || need_py="$need_py cfn-lint"
command -v moto_server >/dev/null 2>&1 || need_py="$need_py moto[server]"
command -v aws >/dev/null 2>&1 || need_py="$need_py awscli"
if [ -n "$need_py" ]; then
	log "installing:$need_py"
	set -f # moto[server] is a name, not a pattern
	# shellcheck disable=SC2086 # a word list on purpose
	if ! { command -v pip3 >/dev/null 2>&1 && pip3 install -q $need_py; }; then
		log "missing:$need_py (the tests of deploy/aws need them); install them with: pip3 install$need_py"
		exit 1
	fi
	set +f
fi

# Workflow linter.
if ! command -v actionlint >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/actionlint" ]; then
	log "installing actionlint"
	go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
fi

# Go static analysis (make test-lint), pinned: a newer release may add checks.
staticcheck_version=v0.8.2
if ! "$(go env GOPATH)/bin/staticcheck" -version 2>/dev/null | grep -q "(${staticcheck_version#v})"; then
	log "installing staticcheck $staticcheck_version"
	go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi

# Local base images: nothing can be pulled here, so build them from Debian.
sh scripts/base-images.sh
log "ready"
