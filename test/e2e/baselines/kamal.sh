#!/bin/sh
# kamal.sh IMAGE: a deploy the way Kamal makes one, the baseline the agent's
# deploy time and WebSocket behaviour are compared against. kamal-proxy (run by
# the harness as a process) serves the app; this script starts the idle color
# of the same image on its published 127.0.0.1 port, asks kamal-proxy to deploy
# it (kamal-proxy polls the health check until it passes, switches new requests
# to it, then drains the old target: it cuts WebSockets at once and gives other
# requests up to the drain timeout), then stops the old color, as `kamal deploy`
# does. The colors share nothing: the new one starts a new room history.
#
# Environment: KP_BIN (the kamal-proxy binary), KP_SERVICE (the service name),
# KP_NAME (container name prefix), KP_BLUE_PORT, KP_GREEN_PORT, KP_STATE_DIR
# (remembers the active color), KP_HEALTH_INTERVAL (default 1s, Kamal's),
# KP_STATIC_DIR (the page's files, mounted read-only and served by the app,
# which nginx does for the agent), KP_DRAIN_SECONDS (default 30, Kamal's: kamal-proxy's drain timeout and the old
# color's stop timeout). The kamal-proxy commands find their
# server through KAMAL_PROXY_SOCKET (and HOME), which the caller sets.
set -eu

image=${1:?usage: kamal.sh IMAGE}
proxy=${KP_BIN:?KP_BIN must be the kamal-proxy binary}
service=${KP_SERVICE:?KP_SERVICE must name the service}
name=${KP_NAME:?KP_NAME must be the container name prefix}
blue_port=${KP_BLUE_PORT:?KP_BLUE_PORT must be set}
green_port=${KP_GREEN_PORT:?KP_GREEN_PORT must be set}
state_dir=${KP_STATE_DIR:?KP_STATE_DIR must be set}
health_interval=${KP_HEALTH_INTERVAL:-1s}
drain=${KP_DRAIN_SECONDS:-30}
static=${KP_STATIC_DIR:?KP_STATIC_DIR must be the page folder}
version=${image##*:}

active=$(cat "$state_dir/active" 2>/dev/null || echo none)
if [ "$active" = blue ]; then
	new=green new_port=$green_port
else
	new=blue new_port=$blue_port
fi

docker rm -f "$name-$new" >/dev/null 2>&1 || true
docker run -d --name "$name-$new" \
	-p "127.0.0.1:$new_port:8080" \
	--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
	--label mywebchat.e2e=baseline \
	-v "$static:/static:ro" -e CHAT_STATIC_DIR=/static \
	-e APP_COLOR="$new" -e APP_VERSION="$version" \
	"$image" >/dev/null

if ! "$proxy" deploy "$service" --target "127.0.0.1:$new_port" \
	--health-check-path /healthz --health-check-interval "$health_interval" \
	--health-check-timeout 5s --deploy-timeout 30s --drain-timeout "${drain}s"; then
	echo "kamal: kamal-proxy did not deploy $name-$new" >&2
	docker rm -f "$name-$new" >/dev/null 2>&1 || true
	exit 1
fi
echo "$new" >"$state_dir/active.tmp"
mv "$state_dir/active.tmp" "$state_dir/active"

if [ "$active" != none ]; then
	docker stop -t "$drain" "$name-$active" >/dev/null 2>&1 || true
	docker rm -f "$name-$active" >/dev/null 2>&1 || true
fi
