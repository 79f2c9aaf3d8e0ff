// Command aws (package fakeaws) stands in for the AWS CLI in the rehearsal of
// the production path: built into a bin directory put first on PATH, it
// answers the calls release.yml and the host bootstrap make, with the
// semantics the AWS documentation gives, against stand-in hosts instead of
// EC2 instances. Nothing reaches AWS.
//
// Build: CGO_ENABLED=0 go build -o BIN/aws ./test/rehearsal/fakeaws. Every
// call is a short process; all state lives in the directory named by
// FAKEAWS_STATE_DIR (required). send-command returns at once and a detached
// runner (the same binary, started in its own session) delivers and runs the
// invocations. The binary is static, so a stand-in host can run it too: copy
// it in as /usr/local/bin/aws and bind-mount the state directory at the same
// path, and the host's own calls (install.sh's get-parameter, create-tags)
// see the same state as the workflow's (all writes are atomic renames, and
// read-modify-writes hold an flock).
//
// # Operations
//
//	ssm send-command          --document-name, --instance-ids | --targets Key=tag:K,Values=V[,V2]
//	                          (or Key=InstanceIds,Values=...), --parameters JSON or Name=Value,
//	                          --max-concurrency N|P%, --max-errors N|P%, --timeout-seconds
//	                          (delivery timeout, 30..2592000, default 3600), --comment
//	ssm list-commands         [--command-id]
//	ssm list-command-invocations --command-id [--instance-id] [--details]
//	ssm get-command-invocation --command-id --instance-id
//	ssm cancel-command        --command-id [--instance-ids]
//	ssm describe-instance-information [--filters Key=tag:K,Values=V | Key=PingStatus,Values=Online |
//	                          Key=InstanceIds,Values=...]
//	ssm get-parameter         --name [--with-decryption]
//	ssm put-parameter         --name --value [--type String|SecureString|StringList] [--overwrite]
//	ssm create-document       --name --content file://PATH|TEXT (also: update-document)
//	ec2 describe-instances    [--instance-ids] [--filters Name=tag:K,Values=V Name=instance-state-name,Values=running ...]
//	ec2 create-tags | delete-tags --resources ID... --tags Key=K,Value=V ...
//
// Global options: --query (JMESPath), --output json|text, --region, --profile,
// --no-cli-pager. Text output follows the AWS CLI's text formatter. Errors go
// to stderr as "An error occurred (Code) when calling the Op operation: ..."
// with exit code 254 (252 for a malformed command line), like the CLI v2.
//
// # State directory
//
//	instances/<InstanceId>.json   the instance registry (below); written by the test harness
//	documents/<Name>.yaml         registered SSM Command documents (create-document writes them,
//	                              or the harness copies a file there)
//	parameters.json               Parameter Store
//	commands/<CommandId>/         command.json, invocations/<InstanceId>.json with stdout/stderr,
//	                              runner.log; cancel marks a cancel request
//	faults/<service>.<operation>  when present, that operation fails: the file holds
//	                              "Code: message" (e.g. "ThrottlingException: Rate exceeded")
//	calls.log                     one JSON line per call: the argv, for tests to check what was asked
//
// # Instance registry
//
// One JSON file per instance, instances/<InstanceId>.json, written
// atomically (temp file + rename) by the harness; ec2 create-tags and
// delete-tags rewrite it under an flock on instances/.lock:
//
//	{
//	  "InstanceId": "i-0123456789abcdef0",   // required; also the file name
//	  "Tags": {"App": "mywebchat", "Name": "host-a"},   // EC2 tags
//	  "State": "running",                    // EC2 state; empty means running
//	  "Managed": true,                       // registered with SSM; false: an EC2 instance
//	                                         // SSM does not manage (never a target, not in
//	                                         // describe-instance-information)
//	  "PingStatus": "Online",                // "ConnectionLost": the SSM agent is down; empty: Online
//	  "Exec": {                              // how the "SSM agent" runs a command on this host
//	    "Kind": "docker",                    // a stand-in host container, commands run with
//	    "Container": "rehearsal-host-a",     //   docker exec -u 0, in their own session
//	    "AgentCheck": "systemctl is-active --quiet amazon-ssm-agent"  // optional: run on the
//	                                         //   host at each delivery; non-zero = agent down
//	  }
//	}
//
// or, for a simulated target that runs /bin/sh locally:
//
//	"Exec": {"Kind": "local", "Dir": "/tmp/x/i-1", "Delay": "1.5s",
//	         "Script": "echo deployed \"$FAKESSM_PARAM_ImageRef\"; exit 0"}
//
// Dir is the host's folder (created when missing); Delay is slept after
// delivery, before the script, and counts against the execution timeout;
// Script, when set, runs instead of the document's commands (which are
// then in the file $FAKESSM_DOCUMENT_SCRIPT). Every script gets
// FAKESSM_INSTANCE_ID, FAKESSM_COMMAND_ID and FAKESSM_PARAM_<Name> for each
// parameter.
//
// A docker host is Online only while its container runs (and AgentCheck, if
// set, succeeds); PingStatus "ConnectionLost" forces the agent down.
//
// # Run Command semantics
//
// Parameters are checked against the document when the command is sent:
// unknown or missing ones, allowedValues, and allowedPattern with Java's
// regex engine (Pattern.find, through the JDK: see package javaregex);
// a refused value fails send-command with InvalidParameters and runs
// nothing. Values are substituted for {{ Name }} in the document's
// runCommand lines and timeoutSeconds. Documents must have exactly one
// aws:runShellScript step. The script is written to a file on the host and
// run as root with /bin/sh, stdin empty, in its own session.
//
// Targets resolve when the command is sent: by tag, only managed instances
// with that tag (an instance-ids list naming an unmanaged one fails with
// InvalidInstanceId). Rate control: at most MaxConcurrency invocations run
// at once (a percentage of the targets, rounded up, at least 1); once the
// errors (Failed and execution TimedOut) exceed MaxErrors (a percentage
// rounds down), no more are sent and the unsent ones end Cancelled with
// StatusDetails Terminated.
//
// Per-invocation Status / StatusDetails / ResponseCode:
//
//	Success / Success / 0
//	Failed / Failed / exit code             the script exited non-zero
//	TimedOut / ExecutionTimedOut / 137      ran longer than the document's timeoutSeconds (killed)
//	TimedOut / DeliveryTimedOut / -1        not started within --timeout-seconds of the send
//	Failed / Undeliverable / -1             the host's SSM agent is down at delivery
//	Cancelled / Cancelled / -1 or 137       cancel-command (137 when it had started and was killed)
//	Cancelled / Terminated / -1             not sent: MaxErrors was exceeded
//
// Undeliverable and DeliveryTimedOut do not count against MaxErrors. The
// command ends Success (all succeeded), Cancelled, Failed (errors exceed
// MaxErrors, StatusDetails Failed; or some invocation did not succeed,
// StatusDetails Incomplete) or TimedOut (delivery timeouts exceed MaxErrors).
// get-command-invocation returns the first 24,000 characters of each
// output stream; list-command-invocations --details the first 2,500.
package main
