#!/bin/sh
# docker-credential-mywebchat-ssm: a Docker credential helper (the protocol of
# docker-credential-helpers) that answers `get` for ghcr.io with the pull-only
# token held in SSM Parameter Store, read again on every call. Both the docker
# CLI (nginx and Redis pulls) and the deploy agent (app pulls; its
# registry.auth_file is the same config.json) ask it for each pull, so
# rotating the token is one `aws ssm put-parameter --overwrite`: no host is
# touched. install.sh installs it as /usr/local/bin/docker-credential-mywebchat-ssm
# and writes {"credHelpers":{"ghcr.io":"mywebchat-ssm"}}.
#
# Settings come from /etc/mywebchat/registry.env (MYWEBCHAT_REGISTRY_ENV
# overrides the path), written by install.sh; nothing in it is secret:
#   GHCR_USER         user name for ghcr.io
#   GHCR_TOKEN_PARAM  the SecureString parameter's name
#   AWS_REGION        its region
# The token travels from aws's stdout through a shell variable to this
# script's stdout: never in an argument, the environment or a file.
set -eu

die() {
	printf 'docker-credential-mywebchat-ssm: %s\n' "$*" >&2
	exit 1
}

case "${1:-}" in
get) ;;
store | erase)
	# Credentials live in Parameter Store; a `docker login` has nothing to keep here.
	cat >/dev/null
	exit 0
	;;
list)
	printf '{}\n'
	exit 0
	;;
*)
	printf 'usage: docker-credential-mywebchat-ssm get|store|erase|list (server URL on stdin)\n' >&2
	exit 2
	;;
esac

server=
IFS= read -r server || [ -n "$server" ] || die "no server URL on stdin"
case "$server" in
ghcr.io | https://ghcr.io | https://ghcr.io/) ;;
*)
	# The protocol's answer for a registry this helper does not serve.
	printf 'credentials not found in native keychain\n'
	exit 1
	;;
esac

conf=${MYWEBCHAT_REGISTRY_ENV:-/etc/mywebchat/registry.env}
[ -r "$conf" ] || die "cannot read $conf (written by install.sh)"
GHCR_USER='' GHCR_TOKEN_PARAM='' AWS_REGION=''
# shellcheck disable=SC1090 # written by install.sh, root-owned
. "$conf"
case "$GHCR_USER" in
'' | *[!A-Za-z0-9-]*) die "GHCR_USER in $conf must be a GitHub user name" ;;
esac
case "$GHCR_TOKEN_PARAM" in
'' | *[!A-Za-z0-9/_.-]*) die "GHCR_TOKEN_PARAM in $conf must be a parameter name" ;;
esac
case "$AWS_REGION" in
'' | *[!a-z0-9-]*) die "AWS_REGION in $conf must be a region like eu-west-1" ;;
esac

# The deploy agent runs this helper inside its systemd sandbox, where a snap
# (Ubuntu's aws) cannot start: no mount namespaces, no CAP_SYS_ADMIN. A snap's
# aws runs as a transient unit outside it instead; its stdout comes back
# through the pipe, as with a plain aws.
run_aws() {
	case "$(command -v aws)" in
	/snap/* | */snap/bin/aws) systemd-run --quiet --pipe --wait --collect --service-type=exec "$(command -v aws)" "$@" ;;
	*) aws "$@" ;;
	esac
}
token=$(run_aws ssm get-parameter --region "$AWS_REGION" --name "$GHCR_TOKEN_PARAM" \
	--with-decryption --query Parameter.Value --output text) ||
	die "cannot read the parameter $GHCR_TOKEN_PARAM in $AWS_REGION (instance role: ssm:GetParameter and kms:Decrypt)"
# GitHub tokens are letters, digits and underscores; anything else is not one
# (and could not be written into the JSON below safely).
case "$token" in
'' | *[!A-Za-z0-9_]*) die "the parameter $GHCR_TOKEN_PARAM does not hold a GitHub token" ;;
esac
printf '{"ServerURL":"ghcr.io","Username":"%s","Secret":"%s"}\n' "$GHCR_USER" "$token"
