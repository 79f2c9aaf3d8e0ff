#!/bin/sh
# mywebchat-agent-upgrade RELEASE SHA256: upgrade this host's deploy agent
# (and the rest of the host bundle: units, scripts, nginx template) to the
# host bundle of RELEASE (sha-<40 hex commit>), run as root by the SSM
# document deploy/ssm-agent-upgrade.yaml. install.sh installs it as
# /usr/local/sbin/mywebchat-agent-upgrade.
#
# It fetches that release's mywebchat-host.tar.gz the way the host was
# bootstrapped (a public repository: the release's download URL; a private
# one: the GitHub API with the token in MYWEBCHAT_BUNDLE_TOKEN_PARAM), checks its SHA-256
# against SHA256 (on a mismatch nothing on the host changes), unpacks it into
# a fresh folder and re-runs its install.sh with the settings the host was
# bootstrapped with (/etc/mywebchat/host.env, written by install.sh). That
# replaces and restarts the agent only when its binary or unit changed; the
# colors and nginx are containers the agent does not own the lifetime of, so
# they keep serving while it restarts.
#
# Settings (in /etc/mywebchat/host.env, or the environment):
#   MYWEBCHAT_RELEASES_URL  where release assets are downloaded from: the
#                     bundle is $MYWEBCHAT_RELEASES_URL/RELEASE/mywebchat-host.tar.gz
#                     (default https://github.com/OWNER/mywebchat/releases/download,
#                     or the GitHub API for a private repository). A mirror or a
#                     file:// folder works too; it is fetched without the token.
#   MYWEBCHAT_REPO    OWNER/NAME of the repository (default MYWEBCHAT_OWNER/mywebchat)
#   MYWEBCHAT_BUNDLE_TOKEN_PARAM  a private repository: the SSM SecureString
#                     with a token that reads its releases (fine-grained, Contents:
#                     read-only); "none" (default): the download URL, no token
#   MYWEBCHAT_GITHUB_API  GitHub's API, for a private repository (default
#                     https://api.github.com; GitHub Enterprise Server: https://HOST/api/v3)
set -eu

log() { printf 'mywebchat-agent-upgrade: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

[ "$#" -eq 2 ] || die "usage: mywebchat-agent-upgrade sha-<40 hex commit> <64 hex SHA-256 of its mywebchat-host.tar.gz>"
release=$1
want=$2
printf '%s\n' "$release" | grep -Eqx 'sha-[0-9a-f]{40}' ||
	die "the release must be sha-<40 hex commit>, got '$release'; nothing was changed"
printf '%s\n' "$want" | grep -Eqx '[0-9a-f]{64}' ||
	die "the SHA-256 must be 64 lower-case hex digits (the release's mywebchat-host.tar.gz.sha256), got '$want'; nothing was changed"
[ "$(id -u)" -eq 0 ] || die "run as root"

conf=${MYWEBCHAT_HOST_ENV:-/etc/mywebchat/host.env}
[ -r "$conf" ] || die "cannot read $conf (install.sh writes it): bootstrap this host again with the release's user data"
# shellcheck disable=SC1090 # written by install.sh, root-owned, nothing secret
. "$conf"
owner=${MYWEBCHAT_OWNER:-}
case "$owner" in
'' | *[!a-z0-9-]*) die "MYWEBCHAT_OWNER in $conf must be the images' owner in lower case" ;;
esac
repo=${MYWEBCHAT_REPO:-$owner/mywebchat}
token_param=${MYWEBCHAT_BUNDLE_TOKEN_PARAM:-none}

work=$(mktemp -d /var/tmp/mywebchat-upgrade.XXXXXX)
trap 'rm -rf "$work"' EXIT
tarball=$work/mywebchat-host.tar.gz

if [ -n "${MYWEBCHAT_RELEASES_URL:-}" ] || [ "$token_param" = none ]; then
	base=${MYWEBCHAT_RELEASES_URL:-https://github.com/$repo/releases/download}
	url=${base%/}/$release/mywebchat-host.tar.gz
	log "fetching $url"
	curl -fsSL -o "$tarball" "$url" || die "could not download $url; nothing was changed"
else
	# A private repository: the release's asset through the API, with the
	# token given to curl on stdin (never its command line), as the user data does.
	auth=$(aws ssm get-parameter --name "$token_param" --with-decryption --query Parameter.Value --output text) ||
		die "cannot read the releases' token parameter $token_param; nothing was changed"
	api=${MYWEBCHAT_GITHUB_API:-https://api.github.com}/repos/$repo/releases/tags/$release
	asset=$(printf 'header = "Authorization: Bearer %s"\n' "$auth" | curl -fsSL -K - "$api" |
		tr '{' ',' | tr ',' '\n' | awk -F'"' '$2 == "url" && $4 ~ /releases\/assets\// { u = $4 } $2 == "name" && $4 == "mywebchat-host.tar.gz" { print u; exit }') ||
		die "could not read the release $release of $repo; nothing was changed"
	[ -n "$asset" ] || die "the release $release of $repo has no mywebchat-host.tar.gz; nothing was changed"
	log "fetching $asset"
	printf 'header = "Authorization: Bearer %s"\nheader = "Accept: application/octet-stream"\n' "$auth" |
		curl -fsSL -K - -o "$tarball" "$asset" || die "could not download $asset; nothing was changed"
fi

got=$(sha256sum "$tarball" | cut -d' ' -f1)
[ "$got" = "$want" ] ||
	die "the bundle of $release has SHA-256 $got, not $want: refused, nothing was changed (check the release's mywebchat-host.tar.gz.sha256)"

mkdir "$work/bundle"
tar -xzf "$tarball" -C "$work/bundle" || die "could not unpack the bundle of $release; nothing was changed"
[ -f "$work/bundle/deploy/install.sh" ] || die "the bundle of $release has no deploy/install.sh; nothing was changed"

# install.sh reads its settings from the environment: those the host was bootstrapped with.
export MYWEBCHAT_OWNER
for v in GHCR_USER GHCR_TOKEN_PARAM MYWEBCHAT_BUNDLE_TOKEN_PARAM MYWEBCHAT_RELEASE_PARAM MYWEBCHAT_DEPLOY_TAG MYWEBCHAT_REDIS \
	MYWEBCHAT_BEHIND_LB AWS_REGION MYWEBCHAT_RELEASES_URL MYWEBCHAT_REPO MYWEBCHAT_GITHUB_API; do
	eval "[ -z \"\${$v+x}\" ] || export $v"
done
log "installing the host bundle of $release"
sh "$work/bundle/deploy/install.sh" || die "the install.sh of $release failed (exit code $?)"
log "done: deploy-agent $(/usr/local/bin/deploy-agent version)"
