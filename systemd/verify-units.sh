#!/bin/sh
# verify-units.sh runs `systemd-analyze verify` on every unit in this folder,
# and `systemd-analyze security --offline=true` on every service, whose
# overall exposure (0 locked down .. 10 unsafe) must stay at or under the
# ceiling below: a unit's sandbox may get stricter, never looser. A drop-in
# shipped here (NAME.conf, installed as /etc/systemd/system/UNIT.d/NAME.conf)
# is checked the same way, as systemd loads it: its unit with it, under the
# name UNIT+NAME.conf. Drop-ins are kept out of a UNIT.d folder here so that
# `systemd-analyze security --offline=true systemd/UNIT` scores the unit alone.
# verify also checks that each Exec path exists; the agent binary is not
# installed on a build machine (nor is mywebchat-nginx-run), so units naming them are verified through a
# copy that points at a stand-in executable. Everything else is unchanged.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

agent=/usr/local/bin/deploy-agent
if [ ! -x "$agent" ]; then
	printf '#!/bin/sh\nexit 0\n' >"$tmp/deploy-agent"
	chmod 0755 "$tmp/deploy-agent"
	agent="$tmp/deploy-agent"
fi

runner=/usr/local/sbin/mywebchat-nginx-run
if [ ! -x "$runner" ]; then
	printf '#!/bin/sh\nexit 0\n' >"$tmp/mywebchat-nginx-run"
	chmod 0755 "$tmp/mywebchat-nginx-run"
	runner="$tmp/mywebchat-nginx-run"
fi

# ceiling UNIT: the highest exposure the unit may have (BENCHMARKS.md has
# the figures and what keeps each one where it is).
ceiling() {
	case $1 in
	deploy-agent.service) echo 1.4 ;;
	# proxy.mode host: the host's nginx runs as root in the agent's sandbox
	# (the drop-in's comments say what it needs).
	deploy-agent.service+deploy-agent-host-mode.conf) echo 2.2 ;;
	# Docker CLI wrappers: what their sandbox cannot take away (root with
	# the engine's socket; for nginx, the network for the credential helper
	# of its pulls) is in each unit's comments.
	mywebchat-nginx.service) echo 1.5 ;;
	mywebchat-redis.service) echo 0.6 ;;
	# Root with the engine's and systemd's sockets, and IP to anywhere (the
	# regional Auto Scaling endpoint): the unit's comments say why.
	mywebchat-fleet-drain.service) echo 1.5 ;;
	*) return 1 ;;
	esac
}

# unit_of DROPIN: the unit a drop-in belongs to.
unit_of() {
	case $1 in
	deploy-agent-host-mode.conf) echo deploy-agent.service ;;
	*) return 1 ;;
	esac
}

# check NAME DIR: verify DIR/UNIT (with the drop-ins DIR/UNIT.d holds) and
# hold its exposure to ceiling NAME.
check() {
	name=$1 dir=$2 unit=${1%%+*}
	if out=$(cd "$dir" && systemd-analyze verify "./$unit" 2>&1) && [ -z "$out" ]; then
		printf 'verify-units: %s ok\n' "$name"
	else
		printf 'verify-units: %s:\n%s\n' "$name" "$out" >&2
		status=1
	fi
	case "$unit" in *.service) ;; *) return 0 ;; esac
	if ! max=$(ceiling "$name"); then
		printf 'verify-units: %s has no exposure ceiling: add one to ceiling() in %s\n' "$name" "$0" >&2
		status=1
		return 0
	fi
	score=$(cd "$dir" && systemd-analyze security --offline=true "./$unit" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	if [ -z "$score" ]; then
		printf 'verify-units: %s: systemd-analyze security gave no exposure level\n' "$name" >&2
		status=1
	elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
		printf 'verify-units: %s: exposure %s is above its ceiling %s; run: systemd-analyze security --offline=true %s (a drop-in: from a folder holding the unit and UNIT.d/ with the drop-in)\n' "$name" "$score" "$max" "$here/$unit" >&2
		status=1
	else
		printf 'verify-units: %s exposure %s (ceiling %s)\n' "$name" "$score" "$max"
	fi
}

# copy UNIT DIR: UNIT into DIR, the paths verify cannot find replaced.
copy() {
	sed "s#/usr/local/bin/deploy-agent#$agent#g; s#/usr/local/sbin/mywebchat-nginx-run#$runner#g" "$1" >"$2/$(basename "$1")"
}

status=0
for unit in "$here"/*.service "$here"/*.timer; do
	[ -e "$unit" ] || continue
	name=$(basename "$unit")
	copy "$unit" "$tmp"
	# Timers need their service next to them.
	case "$name" in *.timer) cp "$here/${name%.timer}.service" "$tmp/" 2>/dev/null || true ;; esac
	check "$name" "$tmp"
done
for dropin in "$here"/*.conf; do
	[ -e "$dropin" ] || continue
	conf=$(basename "$dropin")
	if ! unit=$(unit_of "$conf"); then
		printf 'verify-units: %s: which unit is it a drop-in of? add it to unit_of() in %s\n' "$conf" "$0" >&2
		status=1
		continue
	fi
	dir="$tmp/$unit+$conf"
	mkdir -p "$dir/$unit.d"
	copy "$here/$unit" "$dir"
	cp "$dropin" "$dir/$unit.d/"
	check "$unit+$conf" "$dir"
done
exit "$status"
