#!/bin/sh
# mywebchat-fleet-drain: on a host of the fleet (an Auto Scaling group's
# instance behind the load balancer), wait until Auto Scaling takes this
# instance out (scale-in, replacement), then drain the chat before it goes:
# stop the deploy agent, so it does not start the colors again; stop the chat
# containers with `docker stop -t DRAIN_SECONDS`, so each closes its
# WebSockets with 1012 and a retry_ms and its clients resume on the other
# hosts while the load balancer's deregistration delay (longer than the
# drain) still holds their connections; then complete the lifecycle action
# so the instance may terminate. The fleet stack's user data installs it as
# /usr/local/sbin/mywebchat-fleet-drain with mywebchat-fleet-drain.service.
#
# Settings (environment; the unit reads /etc/mywebchat/fleet.env):
#   ASG_NAME        the Auto Scaling group (required)
#   LIFECYCLE_HOOK  its termination lifecycle hook (required)
#   AWS_REGION      the group's region (required)
#   APP_NAME        the chat's app.name, whose containers are drained (default mywebchat)
#   DRAIN_SECONDS   how long the chat may take to close its sockets (default 30)
#   POLL_SECONDS    how often to ask the instance metadata (default 5)
#   IMDS_URL        the instance metadata service (default http://169.254.169.254)
set -eu

log() { printf 'mywebchat-fleet-drain: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

asg=${ASG_NAME:-}
hook=${LIFECYCLE_HOOK:-}
region=${AWS_REGION:-}
app=${APP_NAME:-mywebchat}
drain=${DRAIN_SECONDS:-30}
poll=${POLL_SECONDS:-5}
imds_url=${IMDS_URL:-http://169.254.169.254}
if [ -z "$asg" ] || [ -z "$hook" ] || [ -z "$region" ]; then
	die "set ASG_NAME, LIFECYCLE_HOOK and AWS_REGION (/etc/mywebchat/fleet.env)"
fi
case "$drain" in '' | *[!0-9]*) die "DRAIN_SECONDS must be a number of seconds, got '$drain'" ;; esac
case "$app" in '' | *[!a-z0-9_.-]*) die "APP_NAME must be the agent's app.name, got '$app'" ;; esac

imds() { # imds PATH: one IMDSv2 read
	t=$(curl -fsS -m 2 -X PUT "$imds_url/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 60') &&
		curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $t" "$imds_url/latest/meta-data/$1"
}

id=$(imds instance-id) || die "the instance metadata service does not answer"
log "watching $id in $asg"
# Auto Scaling sets the target lifecycle state to Terminated when it takes the
# instance out; until then there is nothing to do.
until [ "$(imds autoscaling/target-lifecycle-state 2>/dev/null || true)" = Terminated ]; do
	sleep "$poll"
done

log "$id is being taken out of service: draining the chat (up to ${drain}s)"
systemctl stop deploy-agent.service || log "stopping deploy-agent failed; draining anyway"
containers=$(docker ps -q --filter "label=mywebchat.app=$app") || containers=''
if [ -n "$containers" ]; then
	# shellcheck disable=SC2086 # container ids, one word each
	docker stop -t "$drain" $containers >/dev/null || log "docker stop failed for some of: $containers"
fi
aws autoscaling complete-lifecycle-action --region "$region" --auto-scaling-group-name "$asg" \
	--lifecycle-hook-name "$hook" --instance-id "$id" --lifecycle-action-result CONTINUE ||
	die "complete-lifecycle-action failed; the instance goes when the hook times out"
log "drained; $id may terminate"
