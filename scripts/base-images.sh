#!/bin/sh
# base-images.sh builds, once, the local base images that stand in for the
# public ones when no registry can be reached:
#   mywebchat/debian-base:local  Debian bookworm minbase with nginx-light
#   mywebchat/go-builder:local   the same plus this machine's Go toolchain
#   mywebchat/redis:local        the same plus redis-server, for the Redis-mode
#                                end-to-end run (REDIS_IMAGE of mywebchat-redis.service)
# Dockerfile.nginx and Dockerfile.app take the first two through build ARGs.
set -eu

log() { printf 'base-images: %s\n' "$*" >&2; }

have() { docker image inspect "$1" >/dev/null 2>&1; }

if have mywebchat/debian-base:local && have mywebchat/go-builder:local && have mywebchat/redis:local; then
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

if ! have mywebchat/redis:local; then
	log "building mywebchat/redis:local"
	# The package's own redis user; /data is where a volume or tmpfs goes.
	docker build --network host -q -t mywebchat/redis:local - >/dev/null <<'EOF'
FROM mywebchat/debian-base:local
RUN apt-get update -qq \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null \
	&& rm -rf /var/lib/apt/lists/* \
	&& mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--dir", "/data"]
EOF
fi
