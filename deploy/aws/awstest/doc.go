// Package awstest holds the offline tests of the CloudFormation templates in
// deploy/aws and of deploy/aws/up.sh: cfn-lint on every template, a policy
// check that parses them (least privilege, the OIDC trust, IMDSv2, no SSH),
// the SSM document resources against their source files deploy/ssm-*.yaml
// (which also regenerates them with -update), and up.sh run against moto.
// It has no code of its own.
package awstest
