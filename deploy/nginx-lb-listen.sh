#!/bin/sh
# nginx-lb-listen.sh prints nginx's listen file for a host behind a load
# balancer: the template (nginx-templates/listen-behind-lb.conf) plus one
# set_real_ip_from line per address range the balancer connects from. nginx
# then takes a user's address from X-Forwarded-For only on the balancer's
# connections; anyone else who sends the header (another machine in the VPC
# claiming 127.0.0.1 to get past the rate limits) is counted by its own address.
#
#   sh deploy/nginx-lb-listen.sh RANGES TEMPLATE >listen.conf
#
# RANGES: CIDRs separated by commas or spaces, IPv4 (/8 to /32) or IPv6 (/16
# to /128): the balancer's subnets, or the VPC's range, e.g. 10.0.0.0/16.
# deploy/install.sh runs it with MYWEBCHAT_LB_CIDR. On a bad range it prints
# what is wrong to stderr, nothing to stdout, and exits 2.
set -eu

bad() {
	printf 'nginx-lb-listen: %s\n' "$*" >&2
	exit 2
}

[ $# -eq 2 ] || bad "usage: nginx-lb-listen.sh RANGES TEMPLATE"
template=$2
[ -r "$template" ] || bad "cannot read the template $template"

# is_ipv4 ADDR: four dot-separated numbers 0-255.
is_ipv4() {
	old_ifs=$IFS
	IFS=.
	# shellcheck disable=SC2086 # split on dots on purpose
	set -- $1
	IFS=$old_ifs
	[ $# -eq 4 ] || return 1
	for octet; do
		case $octet in '' | *[!0-9]* | 0?*) return 1 ;; esac
		[ "${#octet}" -le 3 ] && [ "$octet" -le 255 ] || return 1
	done
}

# is_ipv6 ADDR: hex groups and colons, at least two colons (nginx checks the rest).
is_ipv6() {
	case $1 in '' | *[!0-9A-Fa-f:]* | *:::*) return 1 ;; *:*:*) return 0 ;; esac
	return 1
}

ranges=$(printf '%s' "$1" | tr ',' ' ')
lines=''
for r in $ranges; do
	addr=${r%/*}
	bits=${r#*/}
	[ "$addr" != "$r" ] || bad "'$r' has no prefix length: write it as a CIDR, e.g. 10.0.0.0/16"
	case $bits in '' | *[!0-9]* | 0?*) bad "'$r': the prefix length must be a number" ;; esac
	if is_ipv4 "$addr"; then
		if [ "$bits" -lt 8 ] || [ "$bits" -gt 32 ]; then
			bad "'$r': an IPv4 prefix must be /8 to /32 (a wider range would believe X-Forwarded-For from addresses the balancer does not use)"
		fi
	elif is_ipv6 "$addr"; then
		if [ "$bits" -lt 16 ] || [ "$bits" -gt 128 ]; then
			bad "'$r': an IPv6 prefix must be /16 to /128"
		fi
	else
		bad "'$r' is not an IPv4 or IPv6 CIDR, e.g. 10.0.0.0/16"
	fi
	lines="${lines}set_real_ip_from $r;
"
done
[ -n "$lines" ] || bad "no address range given: name the ranges the load balancer connects from (its subnets or the VPC's range), e.g. 10.0.0.0/16"

cat "$template"
printf '\n# The load balancer connects from these ranges (MYWEBCHAT_LB_CIDR).\n%s' "$lines"
