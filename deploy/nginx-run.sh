#!/bin/sh
# nginx-run.sh: the MyWebChat front proxy container, started with the one
# set of flags both of its users share (installed as
# /usr/local/sbin/mywebchat-nginx-run).
#
#   mywebchat-nginx-run --ensure        adopts the running container mywebchat-nginx
#                                       (one an update started) or starts it from
#                                       NGINX_IMAGE (the unit's ExecStartPre, so
#                                       `systemctl start` returns once it runs)
#   mywebchat-nginx-run --wait          waits until mywebchat-nginx exits (the
#                                       unit's main process; systemd restarts the
#                                       unit, which adopts whatever mywebchat-nginx
#                                       is then)
#   mywebchat-nginx-run --start NAME IMAGE
#                                       starts container NAME from IMAGE, detached
#                                       (mywebchat-nginx-update: a successor beside
#                                       the running one on the same ports)
#   mywebchat-nginx-run --resolve REF   prints what docker run is given for REF
#
# Settings come from the unit's environment, else /etc/mywebchat/nginx.env:
# NGINX_IMAGE, NGINX_OPTS (extra docker run flags, split into words) and
# NGINX_NOFILE (the container's open-files limit, default 65536; it cannot
# exceed the engine's own hard limit).
set -eu

env_file=/etc/mywebchat/nginx.env
name=mywebchat-nginx

setting() { # setting NAME DEFAULT
	if v=$(printenv "$1"); then
		printf '%s' "$v"
	elif v=$(sed -n "s/^$1=//p" "$env_file" 2>/dev/null | tail -n 1) && [ -n "$v" ]; then
		printf '%s' "$v"
	else
		printf '%s' "$2"
	fi
}

# resolve REF: what `docker run` should be given. An image present under
# REF runs as is; REPO@sha256:ID naming a local image by its ID (loaded
# rather than pulled, so without a registry digest) runs by that ID when the
# image is tagged in REPO; anything else is pulled by docker run.
resolve() {
	if docker image inspect "$1" >/dev/null 2>&1; then
		printf '%s' "$1"
		return
	fi
	case "$1" in
	*@sha256:*)
		id=sha256:${1##*@sha256:}
		if docker image inspect --format '{{range .RepoTags}}{{println .}}{{end}}' "$id" 2>/dev/null |
			grep -q "^${1%@*}:"; then
			printf '%s' "$id"
			return
		fi
		;;
	esac
	printf '%s' "$1"
}

start() { # start NAME IMAGE
	nofile=$(setting NGINX_NOFILE 65536)
	case "$nofile" in
	'' | *[!0-9]*)
		echo "mywebchat-nginx-run: NGINX_NOFILE must be a number, got '$nofile'" >&2
		exit 2
		;;
	esac
	opts=$(setting NGINX_OPTS '')
	image=$(resolve "$2")
	# shellcheck disable=SC2086 # NGINX_OPTS is a list of flags
	docker run -d --rm --name "$1" \
		--network host \
		--read-only --tmpfs /tmp --tmpfs /run \
		--cap-drop ALL --cap-add CHOWN --cap-add SETUID --cap-add SETGID --cap-add NET_BIND_SERVICE \
		--security-opt no-new-privileges \
		--ulimit "nofile=$nofile:$nofile" \
		--memory 256m --pids-limit 256 \
		--log-driver journald \
		--stop-signal SIGQUIT --stop-timeout 45 \
		-v /var/lib/deploy-agent/nginx:/var/lib/deploy-agent/nginx:ro \
		-v /var/lib/deploy-agent/sockets:/var/lib/deploy-agent/sockets:ro \
		-v /etc/mywebchat/nginx:/etc/nginx/mywebchat/host:ro \
		-v /etc/letsencrypt:/etc/letsencrypt:ro \
		-v /var/lib/mywebchat/acme:/var/www/acme:ro \
		--label mywebchat.role=nginx \
		$opts "$image" >/dev/null
}

case "${1:-}" in
--resolve)
	[ "$#" -eq 2 ] || {
		echo "usage: mywebchat-nginx-run --resolve REF" >&2
		exit 2
	}
	resolve "$2"
	;;
--start)
	[ "$#" -eq 3 ] || {
		echo "usage: mywebchat-nginx-run --ensure | --wait | --start NAME IMAGE | --resolve REF" >&2
		exit 2
	}
	start "$2" "$3"
	;;
--ensure)
	if [ "$(docker inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
		# A container left by a crash (--rm did not run) is removed first.
		docker rm -f "$name" >/dev/null 2>&1 || true
		start "$name" "$(setting NGINX_IMAGE '')"
	fi
	;;
--wait)
	# docker wait prints the exit code; the unit ends with the container.
	exec docker wait "$name"
	;;
*)
	echo "usage: mywebchat-nginx-run --ensure | --wait | --start NAME IMAGE | --resolve REF" >&2
	exit 2
	;;
esac
