#!/bin/sh
# rollout.sh: roll one release across a fleet, one host (or one batch of
# hosts) at a time, stopping at the first failure. It mirrors the release
# workflow's `aws ssm send-command --max-concurrency N --max-errors 0` through
# the SSM document deploy/ssm-deploy.yaml: each host runs the same agent
# command that document runs; the hosts of a batch run at once, and no
# further batch starts once a host has failed (its batch mates finish, as the
# invocations SSM already sent do).
#
# usage: rollout.sh deploy IMAGE HOST_CONFIG...
#        rollout.sh rollback HOST_CONFIG...
#
# HOST_CONFIG is one host's deploy-agent config file (the simulated fleet
# gives every host its own state dir, ports and nginx); on EC2 a host is an
# instance selected by tag and the config is /etc/deploy-agent/agent.yaml.
# A host's name is the name of the folder holding its config.
#
# Env: DEPLOY_AGENT  the agent binary (default: deploy-agent on PATH)
#      ROLLOUT_TIMEOUT  per-host --timeout (default: 10m)
#      ROLLOUT_BATCH  hosts deployed at once (default: 1; the workflow's
#                     DEPLOY_MAX_CONCURRENCY)
#
# Output: the agent's progress per host, then one summary line per host:
#   rollout: <host> deployed | rolled_back | failed (exit N) | skipped
# Exit: 0 when every host succeeded, else the failing host's agent exit code
# (1 failed and rolled back on that host, 3 another deploy running,
# 4 agent not running), 2 for bad usage.
set -u

agent=${DEPLOY_AGENT:-deploy-agent}
timeout=${ROLLOUT_TIMEOUT:-10m}
batch=${ROLLOUT_BATCH:-1}

usage() {
	echo "usage: rollout.sh deploy IMAGE HOST_CONFIG... | rollout.sh rollback HOST_CONFIG..." >&2
	exit 2
}

[ $# -ge 1 ] || usage
action=$1
shift
case $action in
deploy)
	[ $# -ge 2 ] || usage
	image=$1
	shift
	;;
rollback)
	[ $# -ge 1 ] || usage
	image=
	;;
*) usage ;;
esac

case $batch in
'' | *[!0-9]* | 0*)
	echo "rollout.sh: ROLLOUT_BATCH must be a whole number of hosts, at least 1 (got '$batch')" >&2
	exit 2
	;;
esac
for cfg in "$@"; do
	case $cfg in
	*[[:space:]]*)
		echo "rollout.sh: host config paths must not contain white space: $cfg" >&2
		exit 2
		;;
	esac
	if [ ! -f "$cfg" ]; then
		echo "rollout.sh: no such host config: $cfg" >&2
		exit 2
	fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run_host CFG N: one host's agent command, its output and exit code into $tmp.
run_host() {
	if [ "$action" = deploy ]; then
		"$agent" --config "$1" deploy --image "$image" --wait=true --timeout "$timeout"
	else
		"$agent" --config "$1" rollback --wait=true --timeout "$timeout"
	fi >"$tmp/$2.out" 2>&1
	echo $? >"$tmp/$2.rc"
}

summary=
failed=0
rc=0
n=0
while [ $# -gt 0 ]; do
	# The next batch: up to $batch hosts, started together.
	group=
	first=$n
	while [ $# -gt 0 ] && [ $((n - first)) -lt "$batch" ]; do
		group="$group $1"
		shift
		n=$((n + 1))
	done
	if [ "$failed" -ne 0 ]; then
		for cfg in $group; do
			summary="$summary
rollout: $(basename "$(dirname "$cfg")") skipped"
		done
		continue
	fi
	i=$first
	for cfg in $group; do
		echo "== $(basename "$(dirname "$cfg")"): $action${image:+ $image}"
		run_host "$cfg" "$i" &
		i=$((i + 1))
	done
	wait
	i=$first
	for cfg in $group; do
		host=$(basename "$(dirname "$cfg")")
		cat "$tmp/$i.out"
		host_rc=$(cat "$tmp/$i.rc")
		i=$((i + 1))
		echo "== $host: deploy-agent exit code $host_rc"
		if [ "$host_rc" -eq 0 ]; then
			if [ "$action" = deploy ]; then
				summary="$summary
rollout: $host deployed"
			else
				summary="$summary
rollout: $host rolled_back"
			fi
			continue
		fi
		# Like the SSM document: show the host's state for the operator, stop.
		"$agent" --config "$cfg" status || true
		summary="$summary
rollout: $host failed (exit $host_rc)"
		if [ "$failed" -eq 0 ]; then
			rc=$host_rc
		fi
		failed=1
	done
done

printf '%s\n' "$summary" | sed '/^$/d'
exit "$rc"
