#!/bin/sh
# stop-and-run.sh IMAGE: the naive deploy the agent is compared against.
# It stops the running chat container and starts the new image in its place,
# on the same published port, behind an unchanged nginx upstream.
#
# Environment: SR_NAME (container name), SR_PORT (published 127.0.0.1 port),
# SR_COLOR (APP_COLOR for the new container, default blue).
set -eu

image=${1:?usage: stop-and-run.sh IMAGE}
name=${SR_NAME:?SR_NAME must name the container}
port=${SR_PORT:?SR_PORT must be the published port}
color=${SR_COLOR:-blue}
version=${image##*:}

docker stop "$name" >/dev/null 2>&1 || true
docker rm -f "$name" >/dev/null 2>&1 || true
docker run -d --name "$name" \
	-p "127.0.0.1:$port:8080" \
	--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
	--label mywebchat.e2e=baseline \
	-e APP_COLOR="$color" -e APP_VERSION="$version" \
	"$image" >/dev/null
