#!/bin/sh
# base-images.sh builds, once, the local base images that stand in for the
# public ones when no registry can be reached:
#   mywebchat/debian-base:local  Debian bookworm minbase with nginx-light
#   mywebchat/go-builder:local   the same plus this machine's Go toolchain
# Dockerfile.nginx and Dockerfile.app take them through build ARGs.
set -eu

log() { printf 'base-images: %s\n' "$*" >&2; }

have() { docker image inspect "$1" >/dev/null 2>&1; }

if have mywebchat/debian-base:local && have mywebchat/go-builder:local; then
	exit 0
fi

rootfs=/var/cache/mywebchat/rootfs
if [ ! -x "$rootfs/usr/sbin/nginx" ]; then
	log "debootstrap into $rootfs (about a minute)"
	rm -rf "$rootfs"
	mkdir -p "$rootfs"
	debootstrap --variant=minbase --include=nginx-light,ca-certificates bookworm "$rootfs" >/var/log/mywebchat-debootstrap.log 2>&1 || {
		log "debootstrap failed; see /var/log/mywebchat-debootstrap.log"
		exit 1
	}
	rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
fi

if ! have mywebchat/debian-base:local; then
	log "importing mywebchat/debian-base:local"
	tar -C "$rootfs" -c . | docker import \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["nginx", "-g", "daemon off;"]' \
		- mywebchat/debian-base:local >/dev/null
fi

if ! have mywebchat/go-builder:local; then
	goroot=$(go env GOROOT)
	log "importing mywebchat/go-builder:local with $goroot"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/usr/local"
	ln -s "$goroot" "$tmp/usr/local/go"
	# -h follows the link so the toolchain lands at /usr/local/go.
	tar -C "$rootfs" --exclude ./etc/ssl/certs/ca-certificates.crt -cf "$tmp/rootfs.tar" .
	# The host's CA bundle, so that `go mod download` trusts what the host trusts.
	mkdir -p "$tmp/etc/ssl/certs"
	cp /etc/ssl/certs/ca-certificates.crt "$tmp/etc/ssl/certs/"
	tar -C "$tmp" -rhf "$tmp/rootfs.tar" usr/local/go etc/ssl/certs/ca-certificates.crt
	docker import \
		--change 'ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'ENV GOPATH=/go' \
		--change 'WORKDIR /src' \
		"$tmp/rootfs.tar" mywebchat/go-builder:local >/dev/null
fi
