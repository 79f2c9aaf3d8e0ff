#!/bin/sh
# verify-units.sh runs `systemd-analyze verify` on every unit in this folder,
# and `systemd-analyze security --offline=true` on every service, whose
# overall exposure (0 locked down .. 10 unsafe) must stay at or under the
# ceiling below: a unit's sandbox may get stricter, never looser.
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
	# Docker CLI wrappers: what their sandbox cannot take away (root with
	# the engine's socket; for nginx, the network for the credential helper
	# of its pulls) is in each unit's comments.
	mywebchat-nginx.service) echo 1.5 ;;
	mywebchat-redis.service) echo 0.6 ;;
	# Not sandboxed beyond a read-only system yet: it runs sh, curl, the AWS
	# CLI, the Docker CLI and systemctl at scale-in, a path to test on a
	# stand-in host before any setting is added.
	mywebchat-fleet-drain.service) echo 8.9 ;;
	*) return 1 ;;
	esac
}

status=0
for unit in "$here"/*.service "$here"/*.timer; do
	[ -e "$unit" ] || continue
	name=$(basename "$unit")
	sed "s#/usr/local/bin/deploy-agent#$agent#g; s#/usr/local/sbin/mywebchat-nginx-run#$runner#g" "$unit" >"$tmp/$name"
	# Timers need their service next to them.
	case "$name" in *.timer) cp "$here/${name%.timer}.service" "$tmp/" 2>/dev/null || true ;; esac
	if out=$(cd "$tmp" && systemd-analyze verify "./$name" 2>&1) && [ -z "$out" ]; then
		printf 'verify-units: %s ok\n' "$name"
	else
		printf 'verify-units: %s:\n%s\n' "$name" "$out" >&2
		status=1
	fi
	case "$name" in *.service) ;; *) continue ;; esac
	if ! max=$(ceiling "$name"); then
		printf 'verify-units: %s has no exposure ceiling: add one to ceiling() in %s\n' "$name" "$0" >&2
		status=1
		continue
	fi
	score=$(cd "$tmp" && systemd-analyze security --offline=true "./$name" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	if [ -z "$score" ]; then
		printf 'verify-units: %s: systemd-analyze security gave no exposure level\n' "$name" >&2
		status=1
	elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
		printf 'verify-units: %s: exposure %s is above its ceiling %s; run: systemd-analyze security --offline=true %s\n' "$name" "$score" "$max" "$unit" >&2
		status=1
	else
		printf 'verify-units: %s exposure %s (ceiling %s)\n' "$name" "$score" "$max"
	fi
done
exit "$status"
