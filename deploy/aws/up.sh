#!/bin/sh
# up.sh creates or updates everything MyWebChat needs in one AWS account and
# region, with least privilege: the bootstrap stack (GitHub OIDC deploy role,
# SSM documents, failure alerts), the GHCR pull token in Parameter Store, and
# one host (or, with --fleet, a load-balanced fleet). It ends by printing the
# two GitHub variables to set and the site's address. Run it again to update
# the stacks or rotate the token; it changes nothing when nothing changed.
#
#   deploy/aws/up.sh --repo OWNER/REPO < token.txt     # or type the token when asked
#   deploy/aws/up.sh --repo OWNER/REPO --private-repo < tokens.txt
#
# The token (a GitHub token with read:packages only) is read from standard
# input, never from the command line, where ps and shell history would see
# it; it goes to Parameter Store as a SecureString through a 0600 file that is
# removed at once, and is never printed. A private repository's hosts also
# need a fine-grained token for that repository only, Contents: read-only, to
# read its releases: with --private-repo it is the second line of standard
# input, stored the same way in /mywebchat/bundle-token.
#
# Options:
#   --repo OWNER/REPO         the GitHub repository (required)
#   --region REGION           default: AWS_REGION, AWS_DEFAULT_REGION or the CLI's configured region
#   --fleet                   an Auto Scaling group behind a load balancer, rooms in ElastiCache
#   --no-host                 only the bootstrap stack and the token
#   --private-repo            the repository is private: standard input's second line is the
#                             releases' token (give it on every run; without it hosts fetch anonymously)
#   --keep-token              do not read tokens: keep the ones already stored
#   --vpc ID --subnets ID[,ID…]   where hosts go (default: the default VPC and its subnets)
#   --instance-type TYPE      default t3.small
#   --bundle-url URL          host bundle a new host installs (default: the repository's latest release)
#   --alert-email ADDRESS     subscribe an address to failed-deploy alerts
#   --certificate-arn ARN     (--fleet) HTTPS on the load balancer with this ACM certificate
#   --stack-prefix NAME       default mywebchat: stacks NAME-bootstrap, NAME-host, NAME-fleet
set -eu

prog=deploy/aws/up.sh
say() { printf '%s\n' "$*" >&2; }
die() {
	say "up.sh: $*"
	exit 1
}
usage() {
	say "up.sh: $*"
	say "usage: $prog --repo OWNER/REPO [--region REGION] [--fleet|--no-host] [--keep-token] [options] < token-file"
	say "(the options are listed at the top of $prog; nothing was created)"
	exit 2
}
matches() { # matches REGEX VALUE: VALUE as a whole matches the extended REGEX
	printf '%s' "$2" | grep -Eqx -- "$1"
}

here=$(cd "$(dirname "$0")" && pwd)
repo='' region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}} mode=host keep_token=0 private=0
vpc='' subnets='' instance_type=t3.small bundle_url='' alert_email='' certificate_arn='' prefix=mywebchat
token_param=/mywebchat/ghcr-pull-token
bundle_token_param=/mywebchat/bundle-token

# --- arguments: all checked before anything is created -------------------------
while [ $# -gt 0 ]; do
	arg=$1
	case "$arg" in
	--token | --token=* | --ghcr-token | --ghcr-token=* | ghp_* | gho_* | ghu_* | ghs_* | ghr_* | github_pat_* | --*=ghp_* | --*=github_pat_*)
		say "up.sh: a token was given on the command line, where other users of this machine can"
		say "see it (ps) and your shell history keeps it. Nothing was created."
		say "Revoke that token on GitHub, create a new one (read:packages), and give it on standard input:"
		say "  $prog --repo OWNER/REPO < token.txt      (or run it and type the token when asked)"
		exit 2
		;;
	esac
	case "$arg" in
	--fleet) mode=fleet ;;
	--no-host) mode=none ;;
	--keep-token) keep_token=1 ;;
	--private-repo) private=1 ;;
	-h | --help)
		sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
		exit 0
		;;
	--repo | --region | --vpc | --subnets | --instance-type | --bundle-url | --alert-email | --certificate-arn | --stack-prefix)
		[ $# -ge 2 ] || usage "$arg needs a value"
		val=$2
		shift
		case "$arg" in
		--repo) repo=$val ;;
		--region) region=$val ;;
		--vpc) vpc=$val ;;
		--subnets) subnets=$val ;;
		--instance-type) instance_type=$val ;;
		--bundle-url) bundle_url=$val ;;
		--alert-email) alert_email=$val ;;
		--certificate-arn) certificate_arn=$val ;;
		--stack-prefix) prefix=$val ;;
		esac
		;;
	*) usage "unknown argument '$arg'" ;;
	esac
	shift
done

[ -n "$repo" ] || usage "--repo OWNER/REPO is required (the GitHub repository that deploys)"
owner=${repo%%/*}
name=${repo#*/}
if [ "$owner/$name" != "$repo" ] || [ -z "$owner" ] || [ -z "$name" ]; then
	usage "--repo must be OWNER/REPO, e.g. acme/mywebchat; got '$repo'"
fi
if ! matches '[A-Za-z0-9]([A-Za-z0-9]|-[A-Za-z0-9]){0,38}' "$owner" || [ ${#owner} -gt 39 ]; then
	usage "the owner '$owner' is not a GitHub user or organization name (letters, digits, single dashes inside, at most 39)"
fi
if ! matches '[A-Za-z0-9._-]{1,100}' "$name" || [ "$name" = . ] || [ "$name" = .. ]; then
	usage "the repository name '$name' is not valid on GitHub (letters, digits, '.', '_', '-')"
fi
image_owner=$(printf '%s' "$owner" | tr '[:upper:]' '[:lower:]')
if [ -z "$region" ] && command -v aws >/dev/null 2>&1; then
	region=$(aws configure get region 2>/dev/null || true)
fi
[ -n "$region" ] || usage "no region: pass --region (e.g. --region eu-west-1) or set AWS_REGION"
matches '[a-z]{2}(-[a-z]+)+-[0-9]' "$region" || usage "--region '$region' is not an AWS region name like eu-west-1"
matches '[a-z][a-z0-9-]{0,20}' "$prefix" || usage "--stack-prefix '$prefix': lower-case letters, digits and dashes"
matches '[a-z][a-z0-9-]*\.[a-z0-9]+' "$instance_type" || usage "--instance-type '$instance_type' is not an EC2 instance type like t3.small"
[ -z "$vpc" ] || matches 'vpc-[0-9a-f]{8,17}' "$vpc" || usage "--vpc '$vpc' is not a VPC id (vpc-…)"
[ -z "$subnets" ] || matches 'subnet-[0-9a-f]{8,17}(,subnet-[0-9a-f]{8,17})*' "$subnets" ||
	usage "--subnets '$subnets' is not a comma-separated list of subnet ids (subnet-…)"
if [ -n "$subnets" ] && [ -z "$vpc" ]; then usage "--subnets needs --vpc (the subnets' VPC)"; fi
if [ -n "$vpc" ] && [ -z "$subnets" ]; then usage "--vpc needs --subnets (where the hosts go)"; fi
case "$mode:$subnets" in
fleet:*,*) ;;
fleet:?*) usage "a fleet needs subnets in at least two availability zones (--subnets a,b)" ;;
esac
[ -z "$bundle_url" ] || matches 'https://[A-Za-z0-9.-]+/[A-Za-z0-9._~/%-]+\.tar\.gz' "$bundle_url" ||
	usage "--bundle-url '$bundle_url' must be an https:// URL of a .tar.gz"
[ -n "$bundle_url" ] || bundle_url="https://github.com/$owner/$name/releases/latest/download/mywebchat-host.tar.gz"
[ -z "$alert_email" ] || matches '[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+' "$alert_email" ||
	usage "--alert-email '$alert_email' is not an e-mail address"
[ -z "$certificate_arn" ] || [ "$mode" = fleet ] || usage "--certificate-arn is for --fleet (a single host gets its certificate with certbot)"
[ -z "$certificate_arn" ] || matches 'arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+' "$certificate_arn" ||
	usage "--certificate-arn '$certificate_arn' is not an ACM certificate ARN"
command -v aws >/dev/null 2>&1 || die "the AWS CLI (aws) is not installed; nothing was created"

# --- the tokens, from standard input ----------------------------------------------
# read_token WHAT PROMPT: one line of standard input into $got, checked.
read_token() {
	got=
	if [ -t 0 ]; then
		printf '%s (not shown): ' "$2" >&2
		stty -echo 2>/dev/null || true
		trap 'stty echo 2>/dev/null || true' EXIT
		trap 'exit 130' INT TERM
		IFS= read -r got || true
		stty echo 2>/dev/null || true
		trap - EXIT INT TERM
		printf '\n' >&2
	else
		IFS= read -r got || true
	fi
	got=$(printf '%s' "$got" | tr -d '\r')
	if [ -z "$got" ] && [ "$private" -eq 1 ]; then
		usage "no $1 on standard input: $prog --repo $repo --private-repo < tokens.txt (two lines: the GHCR token, then the releases' token; or --keep-token to keep the stored ones)"
	fi
	[ -n "$got" ] || usage "no $1 on standard input: $prog --repo $repo < token.txt (or --keep-token to keep the stored one)"
	# GitHub tokens are letters, digits and underscores; anything else is a
	# paste error (and could not go into the JSON below safely).
	case "$got" in
	*[!A-Za-z0-9_]*) usage "the $1 on standard input is not a GitHub token (letters, digits, '_' only); nothing was created" ;;
	esac
	[ ${#got} -ge 20 ] || usage "the $1 on standard input is too short to be a GitHub token; nothing was created"
}
token='' bundle_token=''
if [ "$keep_token" -eq 0 ]; then
	read_token token 'GHCR pull token (a GitHub token with read:packages only)'
	token=$got
	if [ "$private" -eq 1 ]; then
		read_token "releases' token (the second line, with --private-repo)" "Releases' token (fine-grained, $repo only, Contents: read-only)"
		bundle_token=$got
		[ "$bundle_token" != "$token" ] ||
			usage "the two tokens on standard input are the same: the second must be a fine-grained token for $repo with Contents: read-only; nothing was created"
	fi
	got=
fi

# --- AWS ------------------------------------------------------------------------------
export AWS_REGION="$region" AWS_DEFAULT_REGION="$region"
account=$(aws sts get-caller-identity --query Account --output text) ||
	die "no AWS credentials for region $region (aws configure, or AWS_PROFILE); nothing was created"
say "up.sh: account $account, region $region, repository $repo"

if [ "$keep_token" -eq 1 ]; then
	aws ssm get-parameter --name "$token_param" --query Parameter.Name --output text >/dev/null 2>&1 ||
		die "--keep-token, but no token is stored at $token_param yet: give one on standard input"
	if [ "$private" -eq 1 ]; then
		aws ssm get-parameter --name "$bundle_token_param" --query Parameter.Name --output text >/dev/null 2>&1 ||
			die "--keep-token --private-repo, but no releases' token is stored at $bundle_token_param yet: give both tokens on standard input"
	fi
fi

# Hosts: the default VPC and its default subnets unless given.
if [ "$mode" != none ] && [ -z "$vpc" ]; then
	vpc=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true --query 'Vpcs[0].VpcId' --output text)
	case "$vpc" in vpc-*) ;; *) die "no default VPC in $region: pass --vpc and --subnets" ;; esac
	subnets=$(aws ec2 describe-subnets --filters "Name=vpc-id,Values=$vpc" Name=default-for-az,Values=true \
		--query 'Subnets[].SubnetId' --output text | tr -s '\t ' ',,')
	[ -n "$subnets" ] || die "the default VPC $vpc has no default subnets: pass --vpc and --subnets"
fi
if [ "$mode" = fleet ]; then
	case "$subnets" in *,*) ;; *) die "a fleet needs subnets in at least two availability zones (--subnets a,b)" ;; esac
fi

# An account has one GitHub OIDC provider: use it when it exists and this stack
# did not create it (on a re-run, the stack's own provider stays the stack's).
provider_arn=
stack_provider=$(aws cloudformation describe-stacks --stack-name "$prefix-bootstrap" \
	--query "Stacks[0].Parameters[?ParameterKey=='ExistingOIDCProviderArn'].ParameterValue" --output text 2>/dev/null) || stack_provider=absent
if [ "$stack_provider" = absent ]; then
	provider_arn=$(aws iam list-open-id-connect-providers --query 'OpenIDConnectProviderList[].Arn' --output text |
		tr '\t' '\n' | grep '/token\.actions\.githubusercontent\.com$' || true)
elif [ "$stack_provider" != None ]; then
	provider_arn=$stack_provider
fi

# The tokens: SecureStrings, each through a private file removed at once.
store_token() { # store_token PARAM DESCRIPTION: stores $got
	tmp=$(umask 077 && mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	trap 'exit 130' INT TERM
	(umask 077 && printf '{"Name":"%s","Type":"SecureString","Overwrite":true,"Description":"%s","Value":"%s"}' \
		"$1" "$2" "$got" >"$tmp/put.json")
	got=
	aws ssm put-parameter --cli-input-json "file://$tmp/put.json" --query Version --output text >/dev/null ||
		die "storing the token in $1 failed"
	rm -rf "$tmp"
	trap - EXIT INT TERM
}
if [ "$keep_token" -eq 0 ]; then
	got=$token token=''
	store_token "$token_param" "GHCR pull token for MyWebChat hosts (read:packages)"
	say "up.sh: token stored in $token_param (SecureString); hosts read it for every pull"
	if [ "$private" -eq 1 ]; then
		got=$bundle_token bundle_token=''
		store_token "$bundle_token_param" "Releases token for MyWebChat hosts of a private repository (Contents: read-only)"
		say "up.sh: releases' token stored in $bundle_token_param (SecureString); hosts read it to fetch the host bundle"
	fi
fi
host_bundle_param=
[ "$private" -eq 0 ] || host_bundle_param=$bundle_token_param

deploy() { # deploy STACK TEMPLATE PARAM=VALUE...
	stack=$1 template=$2
	shift 2
	say "up.sh: deploying stack $stack ($template)"
	if out=$(aws cloudformation deploy --stack-name "$stack" --template-file "$here/$template" \
		--capabilities CAPABILITY_IAM --no-fail-on-empty-changeset \
		--tags Project=mywebchat --parameter-overrides "$@" 2>&1); then
		printf '%s\n' "$out" | sed '/^$/d; s/^/  /' >&2
		return 0
	fi
	printf '%s\n' "$out" | sed '/^$/d; s/^/  /' >&2
	# Some endpoints refuse an empty change set outright instead of reporting it.
	case "$out" in
	*"No updates are to be performed"*) say "up.sh: stack $stack unchanged" ;;
	*)
		status=$(aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].StackStatus' --output text 2>/dev/null) || status=''
		say "up.sh: stack $stack failed${status:+ ($status)}; why: aws cloudformation describe-stack-events --stack-name $stack"
		# A stack whose creation failed can only be deleted, then created again.
		[ "$status" != ROLLBACK_COMPLETE ] ||
			say "up.sh: fix the cause, then: aws cloudformation delete-stack --stack-name $stack, and run up.sh again"
		exit 1
		;;
	esac
}
resource() { # resource STACK LOGICAL-ID: the physical id of a stack's resource
	id=$(aws cloudformation list-stack-resources --stack-name "$1" \
		--query "StackResourceSummaries[?LogicalResourceId=='$2'].PhysicalResourceId" --output text) || id=''
	if [ -z "$id" ] || [ "$id" = None ]; then die "stack $1 has no resource $2"; fi
	printf '%s\n' "$id"
}

deploy "$prefix-bootstrap" bootstrap.yaml "GitHubRepository=$repo" "ImageOwner=$image_owner" \
	"ExistingOIDCProviderArn=$provider_arn" "AlertEmail=$alert_email"
site=''
case "$mode" in
host)
	deploy "$prefix-host" host.yaml "ImageOwner=$image_owner" "GitHubRepository=$repo" "BundleUrl=$bundle_url" \
		"BundleTokenParameterName=$host_bundle_param" "VpcId=$vpc" \
		"SubnetId=${subnets%%,*}" "InstanceType=$instance_type"
	# An Elastic IP's physical id is the address itself.
	ip=$(resource "$prefix-host" ElasticIP)
	site="http://$ip/"
	;;
fleet)
	deploy "$prefix-fleet" fleet.yaml "ImageOwner=$image_owner" "GitHubRepository=$repo" "BundleUrl=$bundle_url" \
		"BundleTokenParameterName=$host_bundle_param" "VpcId=$vpc" \
		"SubnetIds=$subnets" "InstanceType=$instance_type" "CertificateArn=$certificate_arn"
	lb=$(resource "$prefix-fleet" LoadBalancer)
	dns=$(aws elbv2 describe-load-balancers --load-balancer-arns "$lb" --query 'LoadBalancers[0].DNSName' --output text)
	scheme=http
	[ -z "$certificate_arn" ] || scheme=https
	site="$scheme://$dns/"
	;;
esac
role_name=$(resource "$prefix-bootstrap" DeployRole)
role=$(aws iam get-role --role-name "$role_name" --query Role.Arn --output text)

cat <<EOF

Done. In GitHub, $repo → Settings → Secrets and variables → Actions → Variables, set:

  AWS_DEPLOY_ROLE_ARN = $role
  AWS_REGION          = $region

Then push to main: the release workflow builds, pushes and deploys.
EOF
if [ -n "$site" ]; then
	printf '\nThe site: %s (it answers once the host has bootstrapped and the first release is deployed)\n' "$site"
fi
