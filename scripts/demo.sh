#!/bin/sh
# demo.sh up|down: the whole MyWebChat stack on one machine, the way a host
# runs it, with a live blue/green deploy.
#
#   up    builds the chat server image twice (demo-1, demo-2: two releases),
#         the nginx image and the deploy agent; starts the agent daemon
#         (under systemd when the machine runs it, else in the background),
#         starts nginx on the host network at http://127.0.0.1:8080, deploys
#         demo-1, then deploys demo-2 while a scripted chat (scripts/demochat)
#         talks through nginx, and prints what the chat saw and
#         `deploy-agent status`. Running it again converges to the same end.
#   down  stops and removes everything `up` made (containers, images it
#         tagged, the agent, /var/lib/mywebchat-demo); nothing else.
#
# Environment: DEMO_PORT (8080), GO_IMAGE / NGINX_IMAGE (build bases; the
# local offline bases when present, else the public images).
set -eu

cd "$(dirname "$0")/.."

demo=/var/lib/mywebchat-demo
state=$demo/state
conf=$demo/agent.yaml
bin=$demo/bin
port=${DEMO_PORT:-8080}
app_name=mywebchat-demo
nginx_name=mywebchat-demo-nginx
agent_unit=mywebchat-demo-agent
repo=mywebchat/app
nginx_tag=mywebchat/nginx:demo

log() { printf '\n==> %s\n' "$*"; }
die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

use_systemd() { [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1; }

agent() { DEPLOY_AGENT_CONFIG=$conf "$bin/deploy-agent" "$@"; }

agent_pid() {
	[ -f "$demo/agent.pid" ] || return 1
	pid=$(cat "$demo/agent.pid")
	kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
}

stop_agent() {
	if use_systemd; then
		systemctl stop "$agent_unit" 2>/dev/null || true
		systemctl reset-failed "$agent_unit" 2>/dev/null || true
	fi
	if pid=$(agent_pid); then
		kill -TERM "$pid"
		i=0
		while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 120 ]; do
			i=$((i + 1))
			sleep 0.5
		done
	fi
	rm -f "$demo/agent.pid"
}

start_agent() {
	if use_systemd; then
		systemd-run --quiet --unit "$agent_unit" --setenv "DEPLOY_AGENT_CONFIG=$conf" \
			--property Restart=on-failure "$bin/deploy-agent" run
	else
		DEPLOY_AGENT_CONFIG=$conf nohup "$bin/deploy-agent" run >>"$demo/agent.log" 2>&1 &
		echo $! >"$demo/agent.pid"
	fi
}

agent_running() {
	if use_systemd; then
		systemctl is-active --quiet "$agent_unit"
	else
		agent_pid >/dev/null
	fi
}

go_build() { # OUT PKG
	if command -v go >/dev/null 2>&1; then
		CGO_ENABLED=0 go build -trimpath -o "$1" "$2"
	else
		# A laptop with Docker but no Go: build in the Go image.
		docker run --rm --network host -v "$PWD:/src" -v "$(dirname "$1"):/out" -w /src \
			-e CGO_ENABLED=0 "$go_image" go build -trimpath -o "/out/$(basename "$1")" "$2"
	fi
}

wait_for() { # DESCRIPTION SECONDS COMMAND...
	what=$1 secs=$2
	shift 2
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -le $((secs * 2)) ] || die "$what did not happen within ${secs}s"
		sleep 0.5
	done
}

active_is() { # TAG: the active release runs that image tag
	agent status --json 2>/dev/null | tr -d ' \n' | grep -o '"active":{[^}]*}' | grep -q "\"image\":\"$repo:$1\""
}

up() {
	docker info >/dev/null 2>&1 || sh scripts/setup.sh
	mkdir -p "$bin"
	chmod 0700 "$demo"

	go_image=${GO_IMAGE:-}
	if [ -z "$go_image" ]; then
		if have_image mywebchat/go-builder:local; then go_image=mywebchat/go-builder:local; else go_image=golang:1.26-bookworm; fi
	fi
	nginx_image=${NGINX_IMAGE:-}
	if [ -z "$nginx_image" ]; then
		if have_image mywebchat/debian-base:local; then nginx_image=mywebchat/debian-base:local; else nginx_image=nginx:1.27-alpine; fi
	fi

	log "building the images: two releases of the chat server and nginx"
	rev=$(git rev-parse HEAD 2>/dev/null || echo unknown)
	for n in 1 2; do
		docker build -q --network host -f Dockerfile.app --build-arg "GO_IMAGE=$go_image" \
			--build-arg "VERSION=demo-$n" --build-arg "REVISION=$rev" -t "$repo:demo-$n" . >/dev/null
		echo "  $repo:demo-$n"
	done
	docker build -q --network host -f Dockerfile.nginx --build-arg "NGINX_IMAGE=$nginx_image" \
		--build-arg "VERSION=demo" --build-arg "REVISION=$rev" -t "$nginx_tag" . >/dev/null
	echo "  $nginx_tag"

	log "building the deploy agent and the scripted chat"
	go_build "$bin/deploy-agent.new" ./agent/cmd/deploy-agent
	go_build "$bin/demochat" ./scripts/demochat
	restart=0
	if ! cmp -s "$bin/deploy-agent.new" "$bin/deploy-agent"; then
		mv -f "$bin/deploy-agent.new" "$bin/deploy-agent"
		restart=1
	else
		rm -f "$bin/deploy-agent.new"
	fi

	cat >"$conf.tmp" <<EOF
# The demo's agent config (scripts/demo.sh); a host uses /etc/deploy-agent/agent.yaml.
state_dir: $state
app:
  name: $app_name
  repository: $repo
  container_port: 8080
  colors: {blue: {port: 8081}, green: {port: 8082}}
  health: {path: /healthz, interval: 250ms, timeout: 2s, healthy_after: 2, start_timeout: 30s}
  drain_timeout: 15s
  verify: 2s
  keep_releases: 5
proxy:
  mode: container
  container: $nginx_name
  output: $state/nginx/upstream.conf
  check_url: http://127.0.0.1:$port/healthz
EOF
	if ! cmp -s "$conf.tmp" "$conf"; then
		mv -f "$conf.tmp" "$conf"
		restart=1
	else
		rm -f "$conf.tmp"
	fi
	printf 'listen 127.0.0.1:%s;\n' "$port" >"$demo/listen.conf"

	log "starting the deploy agent"
	if agent_running && [ "$restart" -eq 1 ]; then
		stop_agent
	fi
	agent_running || start_agent
	wait_for "the agent answering 'deploy-agent status'" 30 agent status
	wait_for "the agent writing $state/nginx/upstream.conf" 30 test -f "$state/nginx/upstream.conf"
	if use_systemd; then echo "  systemd unit $agent_unit"; else echo "  pid $(cat "$demo/agent.pid"), log $demo/agent.log"; fi

	log "starting nginx on http://127.0.0.1:$port (host network)"
	want=$(docker image inspect --format '{{.Id}}' "$nginx_tag")
	have=$(docker inspect --format '{{.Image}}' "$nginx_name" 2>/dev/null || true)
	running=$(docker inspect --format '{{.State.Running}}' "$nginx_name" 2>/dev/null || true)
	if [ "$want" != "$have" ] || [ "$running" != true ]; then
		docker rm -f "$nginx_name" >/dev/null 2>&1 || true
		if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/"; then
			die "something else already listens on 127.0.0.1:$port; stop it or set DEMO_PORT"
		fi
		install -d -m 0711 "$state/sockets"
		docker run -d --name "$nginx_name" --network host --restart unless-stopped \
			--read-only --tmpfs /tmp --tmpfs /run \
			--cap-drop ALL --cap-add CHOWN --cap-add SETUID --cap-add SETGID --cap-add NET_BIND_SERVICE \
			--security-opt no-new-privileges \
			-v "$state/nginx:/var/lib/deploy-agent/nginx:ro" \
			-v "$state/sockets:$state/sockets:ro" \
			-v "$demo/listen.conf:/etc/nginx/mywebchat/listen.conf:ro" \
			--label mywebchat.demo=1 \
			"$nginx_tag" >/dev/null
	fi
	wait_for "nginx serving the page" 20 curl -fsS -o /dev/null "http://127.0.0.1:$port/"

	if ! active_is demo-1; then
		log "deploying release demo-1"
		agent deploy --image "$repo:demo-1" --wait=true --timeout 5m
	fi

	log "live blue/green deploy of demo-2 while the scripted chat talks"
	"$bin/demochat" -url "ws://127.0.0.1:$port/ws" -origin "http://127.0.0.1:$port" -room demo -users 3 \
		>"$demo/demochat.log" 2>&1 &
	chat=$!
	sleep 3
	deploy_rc=0
	agent deploy --image "$repo:demo-2" --wait=true --timeout 5m || deploy_rc=$?
	sleep 3
	kill -INT "$chat" 2>/dev/null || true
	chat_rc=0
	wait "$chat" || chat_rc=$?
	echo
	cat "$demo/demochat.log"

	log "deploy-agent status"
	agent status || true
	echo
	echo "Open http://127.0.0.1:$port/ (room: add ?room=NAME). Agent log: $demo/agent.log; remove it all with: make down"
	[ "$deploy_rc" -eq 0 ] || die "the deploy of demo-2 failed (exit $deploy_rc)"
	[ "$chat_rc" -eq 0 ] || die "the scripted chat saw lost or doubled messages"
}

down() {
	log "stopping the demo"
	stop_agent
	docker rm -f "$nginx_name" >/dev/null 2>&1 || true
	ids=$(docker ps -aq --filter "label=mywebchat.app=$app_name")
	if [ -n "$ids" ]; then
		# shellcheck disable=SC2086 # a list of container ids
		docker rm -f $ids >/dev/null
	fi
	for img in "$repo:demo-1" "$repo:demo-2" "$nginx_tag"; do
		docker rmi "$img" >/dev/null 2>&1 || true
	done
	rm -rf "$demo"
	echo "demo removed"
}

case "${1:-}" in
up) up ;;
down) down ;;
*)
	echo "usage: $0 up|down" >&2
	exit 2
	;;
esac
