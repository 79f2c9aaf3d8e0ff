package awstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// statement is one IAM policy statement found in a template, with where it is.
type statement struct {
	where string
	body  map[string]any
}

// statements finds every policy statement of a template: trust policies, inline and
// managed policies, topic policies — anything under a "Statement" key.
func statements(tpl template) []statement {
	var out []statement
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if st, ok := x["Statement"]; ok {
				for i, s := range list(st) {
					for j, m := range branches(s) {
						out = append(out, statement{fmt.Sprintf("%s[%d]%s", where, i, strings.Repeat("'", j)), m})
					}
				}
			}
			for k, e := range x {
				if k != "Statement" {
					walk(where+"."+k, e)
				}
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", where, i), e)
			}
		}
	}
	for name, r := range tpl.Resources {
		walk(tpl.path+":"+name, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].where < out[j].where })
	return out
}

// branches returns a statement, or both statements of an Fn::If that chooses one
// (AWS::NoValue is no statement): every statement a stack can have.
func branches(v any) []map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	if f, ok := m["Fn::If"].([]any); ok && len(f) == 3 {
		return append(branches(f[1]), branches(f[2])...)
	}
	if m["Ref"] == "AWS::NoValue" {
		return nil
	}
	return []map[string]any{m}
}

// strs returns the strings of a value that is a string or a list (functions are
// rendered with %v, so a !Sub ARN shows its pattern).
func strs(v any) []string {
	var out []string
	for _, e := range list(v) {
		if s, ok := e.(string); ok {
			out = append(out, s)
		} else {
			out = append(out, fmt.Sprint(e))
		}
	}
	return out
}

func loadAll(t *testing.T) []template {
	var tpls []template
	for _, p := range templates {
		tpls = append(tpls, loadTemplate(t, p))
	}
	return tpls
}

// TestPoliciesLeastPrivilege: no wildcard actions, no NotAction/NotResource, and
// ssm:SendCommand only on documents or on instances selected by their tag.
func TestPoliciesLeastPrivilege(t *testing.T) {
	sendCommands := 0
	for _, tpl := range loadAll(t) {
		for _, st := range statements(tpl) {
			for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
				if _, ok := st.body[k]; ok {
					t.Errorf("%s: %s (allows everything else)", st.where, k)
				}
			}
			actions := strs(st.body["Action"])
			for _, a := range actions {
				if a == "*" || strings.HasSuffix(a, ":*") {
					t.Errorf("%s: Action %q: name the calls", st.where, a)
				}
			}
			if !contains(actions, "ssm:SendCommand") {
				continue
			}
			sendCommands++
			cond, hasCond := st.body["Condition"].(map[string]any)
			for _, r := range strs(st.body["Resource"]) {
				switch {
				case r == "*" && !hasCond:
					t.Errorf("%s: ssm:SendCommand on Resource \"*\" without a condition", st.where)
				case strings.Contains(r, ":instance/") && !hasTagCondition(cond):
					t.Errorf("%s: ssm:SendCommand on instances %s without a condition on their tag", st.where, r)
				case r != "*" && !strings.Contains(r, ":instance/") && !strings.Contains(r, ":document/"):
					t.Errorf("%s: ssm:SendCommand on %s: only documents and tagged instances", st.where, r)
				}
			}
		}
	}
	if sendCommands == 0 {
		t.Fatal("no statement allows ssm:SendCommand: the deploy role is missing")
	}
}

// hasTagCondition reports whether a condition tests a resource tag with an exact match.
func hasTagCondition(cond map[string]any) bool {
	eq, _ := cond["StringEquals"].(map[string]any)
	for k, v := range eq {
		if (strings.HasPrefix(k, "ssm:resourceTag/") || strings.HasPrefix(k, "aws:ResourceTag/")) && v != nil {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, e := range xs {
		if e == x {
			return true
		}
	}
	return false
}

// TestTrustPolicies: a role is assumed by EC2 or by GitHub's OIDC tokens, and a token
// must be for STS and from this repository's production environment (exact match).
func TestTrustPolicies(t *testing.T) {
	federated := 0
	for _, tpl := range loadAll(t) {
		for _, name := range tpl.ofType("AWS::IAM::Role") {
			trust, _ := tpl.props(name)["AssumeRolePolicyDocument"].(map[string]any)
			for i, s := range list(trust["Statement"]) {
				st, _ := s.(map[string]any)
				where := fmt.Sprintf("%s:%s trust[%d]", tpl.path, name, i)
				if st["Effect"] != "Allow" {
					continue
				}
				principal, _ := st["Principal"].(map[string]any)
				if svc := strs(principal["Service"]); len(svc) > 0 {
					if len(svc) != 1 || svc[0] != "ec2.amazonaws.com" || len(principal) != 1 {
						t.Errorf("%s: principal %v: only ec2.amazonaws.com or GitHub OIDC", where, principal)
					}
					continue
				}
				if principal["Federated"] == nil || len(principal) != 1 {
					t.Errorf("%s: principal %v: only ec2.amazonaws.com or GitHub OIDC", where, principal)
					continue
				}
				federated++
				if a := strs(st["Action"]); len(a) != 1 || a[0] != "sts:AssumeRoleWithWebIdentity" {
					t.Errorf("%s: Action %v, want sts:AssumeRoleWithWebIdentity only", where, a)
				}
				cond, _ := st["Condition"].(map[string]any)
				if len(cond) != 1 {
					t.Errorf("%s: conditions %v: want StringEquals only (no StringLike wildcards)", where, cond)
				}
				eq, _ := cond["StringEquals"].(map[string]any)
				if aud := eq["token.actions.githubusercontent.com:aud"]; aud != "sts.amazonaws.com" {
					t.Errorf("%s: aud condition %v, want sts.amazonaws.com", where, aud)
				}
				sub := fmt.Sprint(dig(eq, "token.actions.githubusercontent.com:sub", "Fn::Sub"))
				if sub != "repo:${GitHubRepository}:environment:production" {
					t.Errorf("%s: sub condition %v, want repo:OWNER/REPO:environment:production", where, eq["token.actions.githubusercontent.com:sub"])
				}
			}
		}
	}
	if federated == 0 {
		t.Fatal("no role trusts GitHub's OIDC tokens: the deploy role is missing")
	}
}

// awsCall matches an `aws SERVICE COMMAND` call in a workflow's scripts.
var awsCall = regexp.MustCompile(`\baws (ssm|ec2|sts|iam|cloudformation|s3|sns|events) ([a-z][a-z0-9-]+)`)

// TestDeployRoleMatchesWorkflows: the deploy role allows exactly the AWS calls the
// workflows make, no more and no fewer.
func TestDeployRoleMatchesWorkflows(t *testing.T) {
	paths, _ := filepath.Glob("../../../.github/workflows/*.yml")
	want := map[string]bool{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range awsCall.FindAllStringSubmatch(string(b), -1) {
			var action strings.Builder
			for _, w := range strings.Split(m[2], "-") {
				action.WriteString(strings.ToUpper(w[:1]) + w[1:])
			}
			want[m[1]+":"+action.String()] = true
		}
	}
	if len(want) == 0 {
		t.Fatal("no aws calls found in .github/workflows")
	}
	tpl := loadTemplate(t, "../bootstrap.yaml")
	got := map[string]bool{}
	for _, p := range list(tpl.props("DeployRole")["Policies"]) {
		for _, s := range list(dig(p, "PolicyDocument", "Statement")) {
			for _, a := range strs(dig(s, "Action")) {
				got[a] = true
			}
		}
	}
	for a := range want {
		if !got[a] {
			t.Errorf("the workflows call %s but DeployRole does not allow it", a)
		}
	}
	for a := range got {
		if !want[a] {
			t.Errorf("DeployRole allows %s, which no workflow calls", a)
		}
	}
}

// TestHosts: every host is launched from a launch template with IMDSv2 required (two
// hops, for containers) and encrypted volumes, and no security group opens port 22 or
// anything but HTTP(S) to the world.
func TestHosts(t *testing.T) {
	templatesSeen := 0
	for _, tpl := range loadAll(t) {
		for _, name := range tpl.ofType("AWS::EC2::LaunchTemplate") {
			templatesSeen++
			data, _ := tpl.props(name)["LaunchTemplateData"].(map[string]any)
			md, _ := data["MetadataOptions"].(map[string]any)
			if md["HttpTokens"] != "required" {
				t.Errorf("%s:%s: MetadataOptions.HttpTokens %v, want required (IMDSv2)", tpl.path, name, md["HttpTokens"])
			}
			if md["HttpPutResponseHopLimit"] != 2 {
				t.Errorf("%s:%s: hop limit %v, want 2 (metadata from containers)", tpl.path, name, md["HttpPutResponseHopLimit"])
			}
			if md["HttpEndpoint"] == "disabled" {
				t.Errorf("%s:%s: metadata disabled: the SSM agent needs the instance role", tpl.path, name)
			}
			bdm := list(data["BlockDeviceMappings"])
			if len(bdm) == 0 {
				t.Errorf("%s:%s: no root volume mapping: its encryption is not set", tpl.path, name)
			}
			for _, b := range bdm {
				if dig(b, "Ebs", "Encrypted") != true {
					t.Errorf("%s:%s: volume %v not encrypted", tpl.path, name, dig(b, "DeviceName"))
				}
			}
		}
		for _, name := range tpl.ofType("AWS::EC2::Instance") {
			if tpl.props(name)["LaunchTemplate"] == nil {
				t.Errorf("%s:%s: an instance not launched from the launch template", tpl.path, name)
			}
			if _, ok := tpl.props(name)["MetadataOptions"]; ok {
				t.Errorf("%s:%s: MetadataOptions on the instance override the launch template's", tpl.path, name)
			}
		}
		for _, name := range tpl.ofType("AWS::AutoScaling::AutoScalingGroup") {
			p := tpl.props(name)
			if p["LaunchTemplate"] == nil || p["LaunchConfigurationName"] != nil || p["MixedInstancesPolicy"] != nil {
				t.Errorf("%s:%s: the group must launch from the launch template", tpl.path, name)
			}
		}
		if len(tpl.ofType("AWS::AutoScaling::LaunchConfiguration")) > 0 {
			t.Errorf("%s: launch configurations cannot require IMDSv2 here; use the launch template", tpl.path)
		}

		var rules []statement
		for _, name := range tpl.ofType("AWS::EC2::SecurityGroup") {
			for i, r := range list(tpl.props(name)["SecurityGroupIngress"]) {
				m, _ := r.(map[string]any)
				rules = append(rules, statement{fmt.Sprintf("%s:%s ingress[%d]", tpl.path, name, i), m})
			}
		}
		for _, name := range tpl.ofType("AWS::EC2::SecurityGroupIngress") {
			rules = append(rules, statement{tpl.path + ":" + name, tpl.props(name)})
		}
		for _, r := range rules {
			from, fok := r.body["FromPort"].(int)
			to, tok := r.body["ToPort"].(int)
			if proto := fmt.Sprint(r.body["IpProtocol"]); proto != "tcp" || !fok || !tok {
				t.Errorf("%s: protocol %s ports %v-%v: only single TCP ports", r.where, proto, r.body["FromPort"], r.body["ToPort"])
				continue
			}
			if from <= 22 && 22 <= to {
				t.Errorf("%s: ingress on port 22 (%d-%d): use SSM Session Manager", r.where, from, to)
			}
			world := r.body["CidrIp"] == "0.0.0.0/0" || r.body["CidrIpv6"] == "::/0"
			if (world || r.body["CidrIp"] != nil || r.body["CidrIpv6"] != nil) && !(from == to && (from == 80 || from == 443)) {
				t.Errorf("%s: port %d-%d open to addresses: only 80 and 443 are", r.where, from, to)
			}
		}
	}
	if templatesSeen < 2 {
		t.Errorf("%d launch templates found, want the host's and the fleet's", templatesSeen)
	}
}

// subVar matches a ${Name} or ${Resource.Attribute} reference of Fn::Sub.
var subVar = regexp.MustCompile(`\$\{([A-Za-z0-9:.]+)\}`)

// renderUserData renders a launch template's user data as Fn::Sub does, with the
// values given for parameters (others become sample<Name>) and ${!x} as ${x}.
func renderUserData(t *testing.T, tpl template, name string, values map[string]string) string {
	t.Helper()
	src, ok := dig(tpl.props(name), "LaunchTemplateData", "UserData", "Fn::Base64", "Fn::Sub").(string)
	if !ok {
		t.Fatalf("%s: UserData is not Fn::Base64 of an Fn::Sub string", name)
	}
	script := subVar.ReplaceAllStringFunc(src, func(m string) string {
		v := subVar.FindStringSubmatch(m)[1]
		if val, ok := values[v]; ok {
			return val
		}
		if strings.HasPrefix(v, "AWS::") || strings.Contains(v, ".") {
			return "sample-" + strings.NewReplacer(":", "", ".", "-").Replace(v)
		}
		if _, ok := dig(tpl.raw, "Parameters", v).(map[string]any); !ok {
			t.Errorf("user data names ${%s}, which is not a parameter", v)
		}
		return "sample" + v
	})
	return strings.ReplaceAll(script, "${!", "${")
}

// TestUserData renders every launch template's user data with sample parameter values
// and checks it as what cloud-init runs: a #!/bin/sh script that parses and passes
// shellcheck.
func TestUserData(t *testing.T) {
	sh, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck is not installed (scripts/setup.sh installs it)")
	}
	for _, tpl := range loadAll(t) {
		for _, name := range tpl.ofType("AWS::EC2::LaunchTemplate") {
			t.Run(tpl.path+":"+name, func(t *testing.T) {
				for _, bundleToken := range []string{"", "/mywebchat/bundle-token"} {
					script := renderUserData(t, tpl, name, map[string]string{"BundleTokenParameterName": bundleToken})
					if !strings.HasPrefix(script, "#!/bin/sh\n") {
						t.Errorf("user data does not start with #!/bin/sh: cloud-init would not run it as a script")
					}
					cmd := exec.Command(sh, "-s", "sh", "-")
					cmd.Stdin = strings.NewReader(script)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("shellcheck: %v\n%s\n--- script:\n%s", err, out, script)
					}
				}
			})
		}
	}
}

// readmeFetch is the part of the README's user data that fetches and unpacks the host
// bundle, for a public and for a private repository: its lines from the mkdir of
// /opt/mywebchat to the tar that unpacks the bundle.
func readmeFetch(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case !in && strings.HasPrefix(line, "```sh"):
			in, block = true, nil
		case in && strings.HasPrefix(line, "```"):
			in = false
			s := strings.Join(block, "\n")
			if !strings.HasPrefix(s, "#!/bin/sh\n") || !strings.Contains(s, "deploy/install.sh") {
				continue
			}
			start, end := -1, -1
			for i, l := range block {
				if start < 0 && strings.HasPrefix(l, "mkdir -p /opt/mywebchat") {
					start = i
				}
				if start >= 0 && strings.HasPrefix(l, "tar -xzf ") {
					end = i
					break
				}
			}
			if start < 0 || end < 0 {
				t.Fatalf("the README's user data has no lines from `mkdir -p /opt/mywebchat` to `tar -xzf …`:\n%s", s)
			}
			// The lines are shell as a whole script runs them (the template's copy is
			// data in a here-document, which shellcheck does not read).
			sh, err := exec.LookPath("shellcheck")
			if err != nil {
				t.Fatal("shellcheck is not installed (scripts/setup.sh installs it)")
			}
			cmd := exec.Command(sh, "-s", "sh", "-S", "warning", "-")
			cmd.Stdin = strings.NewReader(s + "\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("shellcheck of the README's user data: %v\n%s", err, out)
			}
			return block[start : end+1]
		case in:
			block = append(block, line)
		}
	}
	t.Fatal("README.md has no user data block (a sh block starting with #!/bin/sh that runs deploy/install.sh)")
	return nil
}

// shVar matches a shell variable reference; shAssign a variable assigned on a line.
var (
	shVar    = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)(:-)?`)
	shAssign = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)=`)
)

// TestUserDataFetchesLikeREADME: the stacks' hosts fetch their bundle with exactly the
// README's lines (public, or private through GitHub's API with the releases' token),
// run as a script of their own with -eu until they succeed, with every variable those
// lines read exported by the user data first.
func TestUserDataFetchesLikeREADME(t *testing.T) {
	want := readmeFetch(t)
	for _, tpl := range loadAll(t) {
		for _, name := range tpl.ofType("AWS::EC2::LaunchTemplate") {
			t.Run(tpl.path+":"+name, func(t *testing.T) {
				script := renderUserData(t, tpl, name, nil)
				head, rest, ok := strings.Cut(script, "cat >\"$fetch\" <<'FETCH'\n")
				body, tail, ok2 := strings.Cut(rest, "\nFETCH\n")
				if !ok || !ok2 {
					t.Fatalf("the user data writes no fetch script (cat >\"$fetch\" <<'FETCH' … FETCH):\n%s", script)
				}
				if got := strings.Split(body, "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("the user data fetches the bundle unlike the README; README:\n%s\n--- user data:\n%s", strings.Join(want, "\n"), body)
				}
				if !strings.Contains(tail, "until sh -eu \"$fetch\"; do") {
					t.Errorf("the fetch script is not run with sh -eu until it succeeds:\n%s", tail)
				}
				assigned := map[string]bool{}
				for _, l := range want {
					if m := shAssign.FindStringSubmatch(l); m != nil {
						assigned[m[1]] = true
					}
				}
				for _, m := range shVar.FindAllStringSubmatch(strings.Join(want, "\n"), -1) {
					v := m[1]
					if assigned[v] || m[2] != "" {
						continue
					}
					if !regexp.MustCompile(`(?m)^export .*\b` + v + `=`).MatchString(head) {
						t.Errorf("the fetch lines read $%s, which the user data does not export before them", v)
					}
				}
				// A public repository's stack gives no token parameter: the lines' "none".
				if !strings.Contains(head, `export MYWEBCHAT_BUNDLE_TOKEN_PARAM="${MYWEBCHAT_BUNDLE_TOKEN_PARAM:-none}"`) {
					t.Errorf("an empty BundleTokenParameterName does not become none:\n%s", head)
				}
			})
		}
	}
}

// TestAlerts: a failed or timed-out command of any project document reaches the SNS
// topic, which lets EventBridge (and only that rule) publish to it.
func TestAlerts(t *testing.T) {
	tpl := loadTemplate(t, "../bootstrap.yaml")
	rules := tpl.ofType("AWS::Events::Rule")
	topics := tpl.ofType("AWS::SNS::Topic")
	if len(rules) != 1 || len(topics) != 1 {
		t.Fatalf("rules %v, topics %v: want one of each", rules, topics)
	}
	rule, topic := rules[0], topics[0]
	p := tpl.props(rule)
	pattern, _ := p["EventPattern"].(map[string]any)
	if got := strs(pattern["source"]); len(got) != 1 || got[0] != "aws.ssm" {
		t.Errorf("rule source %v, want aws.ssm", got)
	}
	if got := strs(dig(pattern, "detail", "status")); !contains(got, "Failed") || !contains(got, "TimedOut") {
		t.Errorf("rule statuses %v, want Failed and TimedOut", got)
	}
	if got := fmt.Sprint(dig(pattern, "detail", "document-name")); got != "[map[prefix:MyWebChat-]]" {
		t.Errorf("rule documents %s, want the prefix MyWebChat- (every generated document)", got)
	}
	for _, d := range documentSources(t) {
		if !strings.HasPrefix(d.name, "MyWebChat-") {
			t.Errorf("document %s escapes the rule's prefix", d.name)
		}
	}
	targets := list(p["Targets"])
	if len(targets) != 1 || fmt.Sprint(dig(targets[0], "Arn", "Ref")) != topic {
		t.Errorf("rule targets %v, want the topic %s", targets, topic)
	}
	published := false
	for _, name := range tpl.ofType("AWS::SNS::TopicPolicy") {
		for _, s := range list(dig(tpl.props(name), "PolicyDocument", "Statement")) {
			if fmt.Sprint(dig(s, "Principal", "Service")) == "events.amazonaws.com" &&
				fmt.Sprint(dig(s, "Condition", "ArnEquals", "aws:SourceArn", "Fn::GetAtt")) == "["+rule+" Arn]" {
				published = true
			}
		}
	}
	if !published {
		t.Errorf("no topic policy lets the rule %s (and only it) publish", rule)
	}
}

// TestFleetTargetGroup: the fleet's health check and drain settings are the ones
// docs/fleet.md gives reasons for, and the deregistration delay outlasts the chat drain
// (deploy/agent.yaml's drain_timeout), so clients get the orderly 1012 first.
func TestFleetTargetGroup(t *testing.T) {
	tpl := loadTemplate(t, "../fleet.yaml")
	tgs := tpl.ofType("AWS::ElasticLoadBalancingV2::TargetGroup")
	lbs := tpl.ofType("AWS::ElasticLoadBalancingV2::LoadBalancer")
	if len(tgs) != 1 || len(lbs) != 1 {
		t.Fatalf("target groups %v, load balancers %v: want one of each", tgs, lbs)
	}
	tg := tpl.props(tgs[0])
	attrs := map[string]string{}
	for _, a := range append(list(tg["TargetGroupAttributes"]), list(tpl.props(lbs[0])["LoadBalancerAttributes"])...) {
		attrs[fmt.Sprint(dig(a, "Key"))] = fmt.Sprint(dig(a, "Value"))
	}
	doc, err := os.ReadFile("../../../docs/fleet.md")
	if err != nil {
		t.Fatal(err)
	}
	docValue := func(setting string) string {
		m := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(setting) + ` \| ([^|]+?) \|`).FindSubmatch(doc)
		if m == nil {
			t.Fatalf("docs/fleet.md has no %q row", setting)
		}
		return string(m[1])
	}
	for _, c := range []struct{ setting, got string }{
		{"health check path", "`" + fmt.Sprint(tg["HealthCheckPath"]) + "`"},
		{"interval", fmt.Sprint(tg["HealthCheckIntervalSeconds"]) + " s"},
		{"timeout", fmt.Sprint(tg["HealthCheckTimeoutSeconds"]) + " s"},
		{"healthy threshold", fmt.Sprint(tg["HealthyThresholdCount"])},
		{"unhealthy threshold", fmt.Sprint(tg["UnhealthyThresholdCount"])},
		{"deregistration delay", attrs["deregistration_delay.timeout_seconds"] + " s"},
		{"idle timeout (ALB attribute)", attrs["idle_timeout.timeout_seconds"] + " s"},
	} {
		if want := docValue(c.setting); !strings.HasPrefix(want, c.got) {
			t.Errorf("%s: fleet.yaml %s, docs/fleet.md %s", c.setting, c.got, want)
		}
	}
	agent, err := os.ReadFile("../../agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*drain_timeout:\s*(\d+)s`).FindSubmatch(agent)
	if m == nil {
		t.Fatal("deploy/agent.yaml has no drain_timeout in seconds")
	}
	drain, _ := strconv.Atoi(string(m[1]))
	delay, _ := strconv.Atoi(attrs["deregistration_delay.timeout_seconds"])
	if delay <= drain {
		t.Errorf("deregistration delay %d s is not longer than the chat drain (drain_timeout %d s)", delay, drain)
	}

	// A host taken out drains first: the termination hook waits for it, and the user
	// data starts the drain service with that hook's name.
	asgs := tpl.ofType("AWS::AutoScaling::AutoScalingGroup")
	if len(asgs) != 1 {
		t.Fatalf("Auto Scaling groups %v, want one", asgs)
	}
	hooked := false
	for _, h := range list(tpl.props(asgs[0])["LifecycleHookSpecificationList"]) {
		if dig(h, "LifecycleTransition") != "autoscaling:EC2_INSTANCE_TERMINATING" {
			continue
		}
		hooked = true
		if timeout, _ := dig(h, "HeartbeatTimeout").(int); timeout <= drain {
			t.Errorf("the termination hook times out after %d s, before the chat drain (%d s)", timeout, drain)
		}
		userData := fmt.Sprint(dig(tpl.props("LaunchTemplate"), "LaunchTemplateData", "UserData"))
		for _, want := range []string{"LIFECYCLE_HOOK=" + fmt.Sprint(dig(h, "LifecycleHookName")), "systemctl enable --now mywebchat-fleet-drain.service"} {
			if !strings.Contains(userData, want) {
				t.Errorf("the user data lacks %q", want)
			}
		}
	}
	if !hooked {
		t.Error("no termination lifecycle hook: a host taken out would not drain the chat first")
	}
}

// paramArn is the ARN pattern of a parameter named by a template parameter, as the
// templates write it.
func paramArn(param string) string {
	return "map[Fn::Sub:arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${" + param + "}]"
}

// TestBundleTokenScoped: a host may read the releases' token parameter only when its
// stack names one (a private repository), and then exactly that parameter; it may
// decrypt only through Parameter Store and only those token parameters; no other
// statement mentions the releases' token.
func TestBundleTokenScoped(t *testing.T) {
	for _, path := range []string{"../host.yaml", "../fleet.yaml"} {
		tpl := loadTemplate(t, path)
		t.Run(tpl.path, func(t *testing.T) {
			if got := fmt.Sprint(dig(tpl.raw, "Conditions", "PrivateBundle")); got != `map[Fn::Not:[map[Fn::Equals:[map[Ref:BundleTokenParameterName] ]]]]` {
				t.Errorf("condition PrivateBundle is %s, want BundleTokenParameterName not empty", got)
			}
			if d := dig(tpl.raw, "Parameters", "BundleTokenParameterName", "Default"); d != "" {
				t.Errorf("BundleTokenParameterName defaults to %v, want empty (a public repository)", d)
			}
			stmts := list(dig(tpl.props("InstanceRole"), "Policies"))
			if len(stmts) != 1 {
				t.Fatalf("the instance role has %d inline policies, want 1", len(stmts))
			}
			reads, decrypts := 0, 0
			for i, s := range list(dig(stmts[0], "PolicyDocument", "Statement")) {
				text := fmt.Sprint(s)
				if f, ok := dig(s, "Fn::If").([]any); ok {
					if len(f) != 3 || f[0] != "PrivateBundle" || fmt.Sprint(f[2]) != "map[Ref:AWS::NoValue]" {
						t.Errorf("statement %d: Fn::If %v, want [PrivateBundle, statement, AWS::NoValue]", i, f)
						continue
					}
					st, _ := f[1].(map[string]any)
					if fmt.Sprint(st["Effect"]) != "Allow" || fmt.Sprint(st["Action"]) != "ssm:GetParameter" ||
						fmt.Sprint(st["Resource"]) != paramArn("BundleTokenParameterName") || st["Condition"] != nil {
						t.Errorf("the private repository's statement is %v; want Allow ssm:GetParameter on exactly %s", st, paramArn("BundleTokenParameterName"))
					}
					reads++
					continue
				}
				st, _ := s.(map[string]any)
				if fmt.Sprint(st["Action"]) == "kms:Decrypt" {
					decrypts++
					eq, _ := dig(st, "Condition", "StringEquals").(map[string]any)
					if fmt.Sprint(eq["kms:ViaService"]) != "map[Fn::Sub:ssm.${AWS::Region}.amazonaws.com]" {
						t.Errorf("kms:Decrypt not only through Parameter Store: %v", st["Condition"])
					}
					want := fmt.Sprintf("map[Fn::If:[PrivateBundle [%s %s] [%s]]]", paramArn("TokenParameterName"), paramArn("BundleTokenParameterName"), paramArn("TokenParameterName"))
					if got := fmt.Sprint(eq["kms:EncryptionContext:PARAMETER_ARN"]); got != want {
						t.Errorf("kms:Decrypt for parameters %s; want the GHCR token's, and the releases' token's only for a private repository: %s", got, want)
					}
					continue
				}
				if strings.Contains(text, "BundleTokenParameterName") {
					t.Errorf("statement %d names the releases' token outside the private repository's statement: %v", i, s)
				}
			}
			if reads != 1 || decrypts != 1 {
				t.Errorf("%d statements read the releases' token and %d decrypt; want one each", reads, decrypts)
			}
		})
	}
}
