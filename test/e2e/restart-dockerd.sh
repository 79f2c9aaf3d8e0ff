#!/bin/sh
# restart-dockerd.sh restarts a Docker engine that was started by hand (as
# scripts/setup.sh does where no init system runs it), for the zero-downtime
# harness's "docker engine restart" fault:
#   go run ./test/e2e/cmd/zdt -scenarios '' -faults all -only engine \
#     -engine-restart 'sh test/e2e/restart-dockerd.sh'
# Under systemd use -engine-restart 'systemctl restart docker' instead.
# DOCKERD_ARGS are the engine's flags (default: --iptables=false, as setup.sh
# starts it); add --live-restore to measure a host configured as install.sh does.
set -eu
DOCKERD_ARGS=${DOCKERD_ARGS:---iptables=false}
pid=$(pidof dockerd || true)
if [ -n "$pid" ]; then
	kill -TERM "$pid"
	i=0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le 300 ] || { echo "dockerd $pid did not exit within 30s" >&2; exit 1; }
		sleep 0.1
	done
fi
# shellcheck disable=SC2086 # a word list on purpose
nohup dockerd $DOCKERD_ARGS >>/var/log/dockerd.log 2>&1 &
i=0
until docker info >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -le 300 ] || { echo "dockerd did not answer within 30s; see /var/log/dockerd.log" >&2; exit 1; }
	sleep 0.1
done
