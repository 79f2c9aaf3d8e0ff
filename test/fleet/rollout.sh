#!/bin/sh
# rollout.sh: roll one release across a fleet, one host at a time, stopping at
# the first host that fails. It mirrors the release workflow's
# `aws ssm send-command --max-concurrency 1 --max-errors 0` through the SSM
# document deploy/ssm-deploy.yaml: each host runs the same agent command
# that document runs, and no further host is touched once one has failed.
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
#
# Output: the agent's progress per host, then one summary line per host:
#   rollout: <host> deployed | rolled_back | failed (exit N) | skipped
# Exit: 0 when every host succeeded, else the failing host's agent exit code
# (1 failed and rolled back on that host, 3 another deploy running,
# 4 agent not running), 2 for bad usage.
set -u

agent=${DEPLOY_AGENT:-deploy-agent}
timeout=${ROLLOUT_TIMEOUT:-10m}

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

for cfg in "$@"; do
	if [ ! -f "$cfg" ]; then
		echo "rollout.sh: no such host config: $cfg" >&2
		exit 2
	fi
done

summary=
failed=0
rc=0
for cfg in "$@"; do
	host=$(basename "$(dirname "$cfg")")
	if [ "$failed" -ne 0 ]; then
		summary="$summary
rollout: $host skipped"
		continue
	fi
	echo "== $host: $action${image:+ $image}"
	if [ "$action" = deploy ]; then
		"$agent" --config "$cfg" deploy --image "$image" --wait=true --timeout "$timeout"
	else
		"$agent" --config "$cfg" rollback --wait=true --timeout "$timeout"
	fi
	rc=$?
	echo "== $host: deploy-agent exit code $rc"
	if [ "$rc" -eq 0 ]; then
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
rollout: $host failed (exit $rc)"
	failed=1
done

printf '%s\n' "$summary" | sed '/^$/d'
exit "$rc"
