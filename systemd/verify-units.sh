#!/bin/sh
# verify-units.sh runs `systemd-analyze verify` on every unit in this folder.
# verify also checks that each Exec path exists; the agent binary is not
# installed on a build machine, so units naming it are verified through a
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

status=0
for unit in "$here"/*.service "$here"/*.timer; do
	[ -e "$unit" ] || continue
	name=$(basename "$unit")
	sed "s#/usr/local/bin/deploy-agent#$agent#g" "$unit" >"$tmp/$name"
	# Timers need their service next to them.
	case "$name" in *.timer) cp "$here/${name%.timer}.service" "$tmp/" 2>/dev/null || true ;; esac
	if out=$(cd "$tmp" && systemd-analyze verify "./$name" 2>&1) && [ -z "$out" ]; then
		printf 'verify-units: %s ok\n' "$name"
	else
		printf 'verify-units: %s:\n%s\n' "$name" "$out" >&2
		status=1
	fi
done
exit "$status"
