#!/bin/sh
# bluegreen.sh IMAGE: the common shell-script blue/green deploy the agent is
# compared against. Two colors on two ports behind a two-server nginx upstream:
# start the idle color, wait until it answers /healthz, rewrite the upstream so
# the new color serves and the old one is marked down, reload nginx, then stop
# the old color.
#
# Environment: BG_NAME (container name prefix), BG_BLUE_PORT, BG_GREEN_PORT,
# BG_STATE_DIR (remembers the active color), BG_UPSTREAM (the upstream file
# nginx includes), BG_RELOAD (shell command that reloads nginx),
# BG_HEALTH_TIMEOUT (seconds, default 60).
set -eu

image=${1:?usage: bluegreen.sh IMAGE}
name=${BG_NAME:?BG_NAME must be the container name prefix}
blue_port=${BG_BLUE_PORT:?BG_BLUE_PORT must be set}
green_port=${BG_GREEN_PORT:?BG_GREEN_PORT must be set}
state_dir=${BG_STATE_DIR:?BG_STATE_DIR must be set}
upstream=${BG_UPSTREAM:?BG_UPSTREAM must be set}
reload=${BG_RELOAD:?BG_RELOAD must be the nginx reload command}
health_timeout=${BG_HEALTH_TIMEOUT:-60}
version=${image##*:}

active=$(cat "$state_dir/active" 2>/dev/null || echo none)
if [ "$active" = blue ]; then
	new=green new_port=$green_port old_port=$blue_port
else
	new=blue new_port=$blue_port old_port=$green_port
fi

docker rm -f "$name-$new" >/dev/null 2>&1 || true
docker run -d --name "$name-$new" \
	-p "127.0.0.1:$new_port:8080" \
	--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
	--label mywebchat.e2e=baseline \
	-e APP_COLOR="$new" -e APP_VERSION="$version" \
	"$image" >/dev/null

i=0
until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$new_port/healthz"; do
	i=$((i + 1))
	if [ "$i" -gt $((health_timeout * 5)) ]; then
		echo "bluegreen: $name-$new never became healthy" >&2
		docker rm -f "$name-$new" >/dev/null 2>&1 || true
		exit 1
	fi
	sleep 0.2
done

tmp="$upstream.tmp.$$"
{
	echo "upstream chat {"
	echo "    server 127.0.0.1:$new_port;"
	if [ "$active" != none ]; then
		echo "    server 127.0.0.1:$old_port down;"
	fi
	echo "}"
} >"$tmp"
mv "$tmp" "$upstream"
sh -c "$reload"
echo "$new" >"$state_dir/active.tmp"
mv "$state_dir/active.tmp" "$state_dir/active"

if [ "$active" != none ]; then
	docker stop "$name-$active" >/dev/null 2>&1 || true
	docker rm -f "$name-$active" >/dev/null 2>&1 || true
fi
