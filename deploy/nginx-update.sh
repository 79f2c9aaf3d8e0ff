#!/bin/sh
# nginx-update.sh REF [APP_REF]: switch the front proxy to the image REF
# without failing a request or refusing a connection (installed as
# /usr/local/sbin/mywebchat-nginx-update; the SSM document runs it after a
# successful app deploy, with the app image it just deployed).
#
# Every release builds a new nginx image, but most differ from the running
# one only in their labels (revision, version, build time): those are
# recorded in /etc/mywebchat/nginx.env and nginx keeps running untouched.
# Only a change of what nginx serves or how (its layers: page, site config,
# nginx itself; or its command, environment, user, ports, stop signal)
# switches it:
#   1. pull, and test the new image's config with the host's mounts;
#   2. start it beside the running one as mywebchat-nginx-next: both listen
#      on the same ports (reuseport), the kernel spreads new connections
#      over both, and with net.ipv4.tcp_migrate_req=1 (install.sh) a
#      connection queued on a closing listener moves to the other one;
#   3. retire the old one gracefully (SIGQUIT): it stops listening, finishes
#      its requests and keeps its open WebSockets;
#   4. if it still holds WebSockets, redeploy APP_REF: the swap's drain
#      closes every chat socket with 1012 (a socket that is moved to the new
#      color instead stays with the old nginx until it ends), the clients
#      resume through the new nginx, and the old one exits with its last
#      connection.
set -eu

ref=${1:?usage: mywebchat-nginx-update IMAGE_REF [APP_IMAGE_REF]}
app_ref=${2:-}
env_file=/etc/mywebchat/nginx.env
auth_config=/etc/deploy-agent/docker
name=mywebchat-nginx

log() { printf 'mywebchat-nginx-update: %s\n' "$*"; }

case "$ref$app_ref" in
*[!A-Za-z0-9./:@_-]*)
	log "refusing image reference with unexpected characters"
	exit 2
	;;
esac

# record REF: what the unit starts from now on.
record() {
	mkdir -p "$(dirname "$env_file")"
	tmp="$env_file.tmp.$$"
	{
		grep -v '^NGINX_IMAGE=' "$env_file" 2>/dev/null || true
		printf 'NGINX_IMAGE=%s\n' "$1"
	} >"$tmp"
	mv "$tmp" "$env_file"
}

# content IMAGE: what nginx serves and how it runs, without the labels.
content() {
	docker image inspect --format '{{json .RootFS.Layers}} {{json .Config.Cmd}} {{json .Config.Entrypoint}} {{json .Config.Env}} {{json .Config.User}} {{json .Config.WorkingDir}} {{json .Config.ExposedPorts}} {{json .Config.StopSignal}} {{json .Config.Volumes}}' "$1"
}

image=$(mywebchat-nginx-run --resolve "$ref")
if ! docker image inspect "$image" >/dev/null 2>&1; then
	if [ -d "$auth_config" ]; then
		docker --config "$auth_config" pull -q "$ref" >/dev/null
	else
		docker pull -q "$ref" >/dev/null
	fi
	image=$ref
fi
running=$(docker inspect --format '{{.Image}}' "$name" 2>/dev/null || true)
if [ -n "$running" ] && [ "$(content "$image")" = "$(content "$running")" ]; then
	record "$ref"
	log "$ref serves what the running nginx serves: recorded, nginx left running"
	exit 0
fi

# The unit's extra flags too (e.g. the listen file of a host behind a load
# balancer), split into words as the unit splits $NGINX_OPTS.
opts=$(sed -n 's/^NGINX_OPTS=//p' "$env_file" 2>/dev/null || true)
# shellcheck disable=SC2086
docker run --rm --network none \
	-v /var/lib/deploy-agent/nginx:/var/lib/deploy-agent/nginx:ro \
	-v /etc/mywebchat/nginx:/etc/nginx/mywebchat/host:ro \
	-v /etc/letsencrypt:/etc/letsencrypt:ro \
	$opts "$image" nginx -t -q
record "$ref"

if [ -z "$running" ] || [ "$(docker inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
	# Nothing serves: the unit starts the new image.
	systemctl restart mywebchat-nginx.service
	log "nginx was not running; started $ref"
	exit 0
fi

docker rm -f "$name-next" >/dev/null 2>&1 || true
mywebchat-nginx-run --start "$name-next" "$ref"
# Listening once its workers run (the master binds before it forks them).
i=0
until docker top "$name-next" 2>/dev/null | grep -q 'nginx: worker process'; do
	i=$((i + 1))
	if [ "$i" -ge 100 ] || [ "$(docker inspect --format '{{.State.Running}}' "$name-next" 2>/dev/null)" != true ]; then
		log "the new nginx did not start; the old one keeps serving"
		docker logs --tail 20 "$name-next" 2>&1 || true
		docker stop --time 10 "$name-next" >/dev/null 2>&1 || true
		exit 1
	fi
	sleep 0.1
done
# From here on the agent's reloads (SIGHUP to mywebchat-nginx) reach the
# new one; the unit's wait on the old one ends when it exits, and the unit
# then adopts the new one.
old=$(docker inspect --format '{{.Id}}' "$name")
docker rename "$name" "$name-retiring-$$"
docker rename "$name-next" "$name"
docker kill --signal QUIT "$old" >/dev/null
log "now serving $ref; the previous nginx stopped listening and finishes its connections"

gone() { ! docker inspect "$old" >/dev/null 2>&1 || [ "$(docker inspect --format '{{.State.Running}}' "$old" 2>/dev/null)" != true ]; }
i=0
while ! gone && [ "$i" -lt 30 ]; do
	i=$((i + 1))
	sleep 0.1
done
if ! gone && [ -n "$app_ref" ]; then
	# Open WebSockets keep it alive: a swap closes them with 1012 and the
	# clients resume through the new nginx.
	log "the previous nginx still holds WebSockets: redeploying $app_ref to close them with 1012"
	/usr/local/bin/deploy-agent deploy --image "$app_ref" --wait=true --timeout 10m >/dev/null ||
		log "the redeploy failed; the previous nginx closes its sockets at its shutdown timeout"
fi
# The old container exits with its last connection (worker_shutdown_timeout
# bounds it) and removes itself; the unit then adopts the new one.
i=0
while ! gone && [ "$i" -lt 100 ]; do
	i=$((i + 1))
	sleep 0.1
done
if gone; then
	log "the previous nginx has exited"
else
	log "the previous nginx still finishes connections; it exits with its last one"
fi
