#!/bin/sh
# nginx-update.sh REF: switch the front proxy container to the image REF
# (installed as /usr/local/sbin/mywebchat-nginx-update; the SSM document
# runs it after a successful app deploy when the release changed the page
# or the site config). Pulls, tests the new image's config with the host's
# mounts, records REF in /etc/mywebchat/nginx.env and restarts the unit.
# Nothing happens when REF is already running. A restart closes open
# WebSockets once; clients resume within a second (docs/protocol.md), which is
# why app-only releases never touch nginx.
set -eu

ref=${1:?usage: mywebchat-nginx-update IMAGE_REF}
env_file=/etc/mywebchat/nginx.env
auth_config=/etc/deploy-agent/docker

log() { printf 'mywebchat-nginx-update: %s\n' "$*"; }

case "$ref" in
*[!A-Za-z0-9./:@_-]*) log "refusing image reference with unexpected characters"; exit 2 ;;
esac

if [ -d "$auth_config" ]; then
	docker --config "$auth_config" pull -q "$ref" >/dev/null
else
	docker pull -q "$ref" >/dev/null
fi
new_id=$(docker image inspect --format '{{.Id}}' "$ref")
cur_id=$(docker inspect --format '{{.Image}}' mywebchat-nginx 2>/dev/null || true)
if [ "$new_id" = "$cur_id" ]; then
	log "already running $ref"
	exit 0
fi

# The unit's extra flags too (e.g. the listen file of a host behind a load
# balancer), split into words as systemd splits $NGINX_OPTS.
opts=$(sed -n 's/^NGINX_OPTS=//p' "$env_file" 2>/dev/null || true)
# shellcheck disable=SC2086
docker run --rm --network none \
	-v /var/lib/deploy-agent/nginx:/var/lib/deploy-agent/nginx:ro \
	-v /etc/mywebchat/nginx:/etc/nginx/mywebchat/host:ro \
	-v /etc/letsencrypt:/etc/letsencrypt:ro \
	$opts "$ref" nginx -t -q

mkdir -p "$(dirname "$env_file")"
tmp="$env_file.tmp.$$"
{
	grep -v '^NGINX_IMAGE=' "$env_file" 2>/dev/null || true
	printf 'NGINX_IMAGE=%s\n' "$ref"
} >"$tmp"
mv "$tmp" "$env_file"
systemctl restart mywebchat-nginx.service
i=0
until curl -fsS -o /dev/null http://127.0.0.1/; do
	i=$((i + 1))
	if [ "$i" -ge 30 ]; then
		log "nginx did not answer on 127.0.0.1:80 after the restart"
		exit 1
	fi
	sleep 1
done
log "now running $ref"
