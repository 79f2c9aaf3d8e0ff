package awstest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// motoReadyTimeout bounds moto_server's start (about a second here).
const motoReadyTimeout = 30 * time.Second

// startMoto runs moto_server on a free port of 127.0.0.1 for the test and returns its URL.
func startMoto(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatal("moto_server is not installed (pip install 'moto[server]'); the up.sh test needs it")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	logf, err := os.Create(filepath.Join(t.TempDir(), "moto.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(motoReadyTimeout)
	for {
		resp, err := http.Get(url + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not answer on %s within %s: %v", url, motoReadyTimeout, err)
		}
		time.Sleep(100 * time.Millisecond) // polling a server that is starting
	}
}

// upEnv is a shell environment that sends every aws call to moto, with fake credentials,
// no config from the machine, and an `aws` wrapper first on PATH that logs its arguments.
type upEnv struct {
	env    []string
	awsLog string
	tmp    string
}

func newUpEnv(t *testing.T, moto string) upEnv {
	t.Helper()
	realAWS, err := exec.LookPath("aws")
	if err != nil {
		t.Fatal("the AWS CLI (aws) is not installed; up.sh needs it")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	awsLog := filepath.Join(dir, "aws-calls")
	wrapper := "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'" + awsLog + "'\nexec '" + realAWS + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "aws"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	os.Mkdir(tmp, 0o700)
	home := filepath.Join(dir, "home")
	os.Mkdir(home, 0o700)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "TMPDIR=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+home, "TMPDIR="+tmp,
		"AWS_ENDPOINT_URL="+moto, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=")
	return upEnv{env: env, awsLog: awsLog, tmp: tmp}
}

// run runs up.sh with stdin and args; it returns stdout, stderr and the exit code.
func (e upEnv) run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{"../up.sh"}, args...)...)
	cmd.Env = e.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("up.sh: %v", err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errOut.String(), code
}

// aws runs the real CLI against moto (not through the logging wrapper) and decodes JSON.
func (e upEnv) aws(t *testing.T, v any, args ...string) {
	t.Helper()
	cmd := exec.Command("aws", append(args, "--region", "eu-west-1", "--output", "json")...)
	cmd.Env = e.env
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("aws %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (e upEnv) calls(t *testing.T) string {
	b, err := os.ReadFile(e.awsLog)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

const (
	token1 = "ghp_firstTOKEN0123456789abcdefghijABCDEF"
	token2 = "ghp_rotatedTOKEN0123456789abcdefghijABCD"
)

// TestUpRefusesBadInput: every bad input is refused with a clear message, exit 2, before
// any AWS call (the aws wrapper is never run) and so before anything is created.
func TestUpRefusesBadInput(t *testing.T) {
	e := newUpEnv(t, "http://127.0.0.1:9") // nothing listens: no call may be made anyway
	tests := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"no repository", token1, []string{"--region", "eu-west-1"}, "--repo OWNER/REPO is required"},
		{"no owner", token1, []string{"--repo", "mywebchat", "--region", "eu-west-1"}, "--repo must be OWNER/REPO"},
		{"malformed owner", token1, []string{"--repo", "-acme/mywebchat", "--region", "eu-west-1"}, "is not a GitHub user or organization name"},
		{"owner with a space", token1, []string{"--repo", "ac me/mywebchat", "--region", "eu-west-1"}, "is not a GitHub user or organization name"},
		{"malformed repository", token1, []string{"--repo", "acme/my webchat", "--region", "eu-west-1"}, "is not valid on GitHub"},
		{"token flag", "", []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--token", token1}, "a token was given on the command line"},
		{"token as an argument", "", []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", token1}, "a token was given on the command line"},
		{"token in a flag's value", "", []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--ghcr-token=" + token1}, "a token was given on the command line"},
		{"no token on stdin", "", []string{"--repo", "acme/mywebchat", "--region", "eu-west-1"}, "no token on standard input"},
		{"not a token on stdin", "my secret password!\n", []string{"--repo", "acme/mywebchat", "--region", "eu-west-1"}, "is not a GitHub token"},
		{"no region", token1, []string{"--repo", "acme/mywebchat"}, "no region"},
		{"bad region", token1, []string{"--repo", "acme/mywebchat", "--region", "europe"}, "is not an AWS region name"},
		{"missing value", token1, []string{"--repo"}, "--repo needs a value"},
		{"unknown flag", token1, []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--yes"}, "unknown argument '--yes'"},
		{"subnets without vpc", token1, []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--subnets", "subnet-0123456789abcdef0"}, "--subnets needs --vpc"},
		{"vpc without subnets", token1, []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--vpc", "vpc-0123456789abcdef0"}, "--vpc needs --subnets"},
		{"fleet in one subnet", token1, []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--fleet", "--vpc", "vpc-0123456789abcdef0", "--subnets", "subnet-0123456789abcdef0"}, "at least two availability zones"},
		{"private repository without the second token", token1 + "\n", []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--private-repo"}, "no releases' token (the second line, with --private-repo) on standard input"},
		{"private repository with one token twice", token1 + "\n" + token1 + "\n", []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--private-repo"}, "the two tokens on standard input are the same"},
		{"private repository with a bad second token", token1 + "\nnot a token!\n", []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--private-repo"}, "the releases' token (the second line, with --private-repo) on standard input is not a GitHub token"},
		{"certificate without fleet", token1, []string{"--repo", "acme/mywebchat", "--region", "eu-west-1", "--certificate-arn", "arn:aws:acm:eu-west-1:123456789012:certificate/abc"}, "is for --fleet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := e.run(t, tt.stdin, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 2 and %q", code, errOut, tt.want)
			}
			if !strings.Contains(errOut, "nothing was created") && !strings.Contains(errOut, "Nothing was created") {
				t.Errorf("stderr does not say that nothing was created:\n%s", errOut)
			}
			if strings.Contains(out+errOut, token1) {
				t.Errorf("the token was echoed:\n%s%s", out, errOut)
			}
		})
	}
	// `aws configure get region` reads the local CLI config (for "no region"); nothing else may run.
	for _, c := range strings.Split(strings.TrimSpace(e.calls(t)), "\n") {
		if c != "" && c != "configure get region" {
			t.Errorf("bad input reached AWS: aws %s", c)
		}
	}
}

// TestUpAgainstMoto runs up.sh's real aws calls against moto: it creates the bootstrap
// and host stacks, stores the token as a SecureString without putting it in any argument
// or output, prints the two GitHub variables and the site, and a second run rotates the
// token and leaves the stacks as they are. (The fleet stack's ElastiCache is not
// something moto can create; cfn-lint and the policy tests cover that template.)
func TestUpAgainstMoto(t *testing.T) {
	t.Parallel() // slow: an external tool, run beside the other tests
	e := newUpEnv(t, startMoto(t))
	out, errOut, code := e.run(t, token1+"\n", "--repo", "Acme/MyWebChat", "--region", "eu-west-1")
	if code != 0 {
		t.Fatalf("up.sh exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"AWS_DEPLOY_ROLE_ARN = arn:aws:iam::123456789012:role/mywebchat-bootstrap-DeployRole-",
		"AWS_REGION          = eu-west-1",
		"The site: http://",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	calls := e.calls(t)
	if strings.Contains(out+errOut+calls, token1) {
		t.Errorf("the token appears in the output or in an aws command line")
	}
	if !strings.Contains(calls, "ssm put-parameter --cli-input-json file://") {
		t.Errorf("the token was not stored through --cli-input-json file://…; aws calls:\n%s", calls)
	}
	if entries, _ := os.ReadDir(e.tmp); len(entries) != 0 {
		t.Errorf("up.sh left %d temporary files behind (the token file must go)", len(entries))
	}

	var param struct{ Parameter struct{ Type, Value string } }
	e.aws(t, &param, "ssm", "get-parameter", "--name", "/mywebchat/ghcr-pull-token", "--with-decryption")
	if param.Parameter.Type != "SecureString" || param.Parameter.Value != token1 {
		t.Errorf("token parameter: type %q, value matches: %v; want a SecureString with the token", param.Parameter.Type, param.Parameter.Value == token1)
	}
	var doc struct{ Content json.RawMessage }
	e.aws(t, &doc, "ssm", "get-document", "--name", "MyWebChat-Deploy")
	if c := string(doc.Content); !strings.Contains(c, `io/acme/mywebchat-app(@sha256:`) || strings.Contains(c, "OWNER") {
		t.Errorf("MyWebChat-Deploy's pattern does not name ghcr.io/acme (lower case):\n%.400s", c)
	}
	var docs struct{ DocumentIdentifiers []struct{ Name string } }
	e.aws(t, &docs, "ssm", "list-documents", "--filters", "Key=Owner,Values=Self")
	sources := documentSources(t)
	if len(docs.DocumentIdentifiers) != len(sources) {
		t.Errorf("%d documents registered, want one per deploy/ssm-*.yaml (%d)", len(docs.DocumentIdentifiers), len(sources))
	}
	roleArn := out[strings.Index(out, "arn:aws:iam::"):]
	roleArn = roleArn[:strings.IndexAny(roleArn, " \n")]
	var role struct {
		Role struct{ AssumeRolePolicyDocument any }
	}
	e.aws(t, &role, "iam", "get-role", "--role-name", roleArn[strings.LastIndex(roleArn, "/")+1:])
	trust, _ := json.Marshal(role.Role.AssumeRolePolicyDocument)
	for _, want := range []string{`"token.actions.githubusercontent.com:sub":"repo:Acme/MyWebChat:environment:production"`, `"token.actions.githubusercontent.com:aud":"sts.amazonaws.com"`} {
		if !strings.Contains(string(trust), want) {
			t.Errorf("the deploy role's trust lacks %s:\n%s", want, trust)
		}
	}
	var addrs struct {
		Addresses []struct{ PublicIp, InstanceId string }
	}
	e.aws(t, &addrs, "ec2", "describe-addresses")
	if len(addrs.Addresses) != 1 || addrs.Addresses[0].InstanceId == "" || !strings.Contains(out, "http://"+addrs.Addresses[0].PublicIp+"/") {
		t.Errorf("Elastic IPs %+v; want one, on the host, printed as the site", addrs.Addresses)
	}

	// A public repository's host: no releases' token, none in its role or user data.
	if got := hostStack(t, e); got.params["BundleTokenParameterName"] != "" || got.params["GitHubRepository"] != "Acme/MyWebChat" ||
		strings.Contains(got.policy, "bundle-token") || !strings.Contains(got.userData, `MYWEBCHAT_BUNDLE_TOKEN_PARAM=''`) {
		t.Errorf("public repository's host stack: parameters %v\nrole policy %s\nuser data %.2000s", got.params, got.policy, got.userData)
	}

	// Rotation: the same command with a new token; the stacks stay as they are.
	out, errOut, code = e.run(t, token2+"\n", "--repo", "Acme/MyWebChat", "--region", "eu-west-1")
	if code != 0 {
		t.Fatalf("second up.sh exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	e.aws(t, &param, "ssm", "get-parameter", "--name", "/mywebchat/ghcr-pull-token", "--with-decryption")
	if param.Parameter.Value != token2 {
		t.Errorf("after the second run the parameter does not hold the new token")
	}
	if strings.Contains(out+errOut+e.calls(t), token2) {
		t.Errorf("the new token appears in the output or in an aws command line")
	}
	e.aws(t, &addrs, "ec2", "describe-addresses")
	if len(addrs.Addresses) != 1 {
		t.Errorf("after a re-run: %d Elastic IPs, want the same one", len(addrs.Addresses))
	}

	// --keep-token reads nothing from stdin and keeps the stored token.
	if out, errOut, code = e.run(t, "", "--repo", "Acme/MyWebChat", "--region", "eu-west-1", "--keep-token"); code != 0 {
		t.Fatalf("up.sh --keep-token exit %d\n%s%s", code, out, errOut)
	}
	e.aws(t, &param, "ssm", "get-parameter", "--name", "/mywebchat/ghcr-pull-token", "--with-decryption")
	if param.Parameter.Value != token2 {
		t.Errorf("--keep-token changed the stored token")
	}
}

const bundleToken = "github_pat_11ABCDEFG0releasesTOKEN_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"

// hostStackView is what moto holds for the host stack: its parameters, the instance
// role's inline policy, and the launch template's user data as the instance gets it.
type hostStackView struct {
	params           map[string]string
	policy, userData string
}

func hostStack(t *testing.T, e upEnv) hostStackView {
	t.Helper()
	var stacks struct {
		Stacks []struct {
			Parameters []struct{ ParameterKey, ParameterValue string }
		}
	}
	e.aws(t, &stacks, "cloudformation", "describe-stacks", "--stack-name", "mywebchat-host")
	v := hostStackView{params: map[string]string{}}
	for _, p := range stacks.Stacks[0].Parameters {
		v.params[p.ParameterKey] = p.ParameterValue
	}
	var res struct {
		StackResourceSummaries []struct{ LogicalResourceId, PhysicalResourceId string }
	}
	e.aws(t, &res, "cloudformation", "list-stack-resources", "--stack-name", "mywebchat-host")
	ids := map[string]string{}
	for _, r := range res.StackResourceSummaries {
		ids[r.LogicalResourceId] = r.PhysicalResourceId
	}
	var pol struct{ PolicyDocument any }
	e.aws(t, &pol, "iam", "get-role-policy", "--role-name", ids["InstanceRole"], "--policy-name", "host")
	doc := pol.PolicyDocument
	if s, ok := doc.(string); ok {
		// moto hands back the document as a string in Python's notation (an
		// AWS::NoValue statement as None): its quotes become JSON's (the document
		// has no other), None null.
		s = strings.NewReplacer("'", `"`, "None", "null").Replace(s)
		if err := json.Unmarshal([]byte(s), &doc); err != nil {
			t.Fatalf("the instance role's policy: %v\n%s", err, s)
		}
	}
	b, _ := json.Marshal(doc)
	v.policy = string(b)
	var lt struct {
		LaunchTemplateVersions []struct{ LaunchTemplateData struct{ UserData string } }
	}
	e.aws(t, &lt, "ec2", "describe-launch-template-versions", "--launch-template-id", ids["LaunchTemplate"], "--versions", "$Latest")
	if len(lt.LaunchTemplateVersions) != 1 {
		t.Fatalf("launch template %s: %d versions", ids["LaunchTemplate"], len(lt.LaunchTemplateVersions))
	}
	ud, err := base64.StdEncoding.DecodeString(lt.LaunchTemplateVersions[0].LaunchTemplateData.UserData)
	if err != nil {
		t.Fatalf("user data is not base64: %v", err)
	}
	v.userData = string(ud)
	return v
}

// TestUpPrivateRepoAgainstMoto: with --private-repo, up.sh reads the releases' token as
// the second line of standard input and stores it as a SecureString beside the GHCR
// token (neither in any command line or output); the host stack names that parameter,
// its role may read exactly it, and its user data fetches through the API with it.
func TestUpPrivateRepoAgainstMoto(t *testing.T) {
	t.Parallel() // slow: an external tool, run beside the other tests
	e := newUpEnv(t, startMoto(t))
	out, errOut, code := e.run(t, token1+"\n"+bundleToken+"\n", "--repo", "Acme/MyWebChat", "--region", "eu-west-1", "--private-repo")
	if code != 0 {
		t.Fatalf("up.sh --private-repo exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if all := out + errOut + e.calls(t); strings.Contains(all, token1) || strings.Contains(all, bundleToken) {
		t.Errorf("a token appears in the output or in an aws command line")
	}
	if entries, _ := os.ReadDir(e.tmp); len(entries) != 0 {
		t.Errorf("up.sh left %d temporary files behind (the token files must go)", len(entries))
	}
	for name, want := range map[string]string{"/mywebchat/ghcr-pull-token": token1, "/mywebchat/bundle-token": bundleToken} {
		var param struct{ Parameter struct{ Type, Value string } }
		e.aws(t, &param, "ssm", "get-parameter", "--name", name, "--with-decryption")
		if param.Parameter.Type != "SecureString" || param.Parameter.Value != want {
			t.Errorf("%s: type %q, value matches: %v; want a SecureString with its token", name, param.Parameter.Type, param.Parameter.Value == want)
		}
	}
	got := hostStack(t, e)
	if got.params["BundleTokenParameterName"] != "/mywebchat/bundle-token" {
		t.Errorf("host stack parameters %v: BundleTokenParameterName is not /mywebchat/bundle-token", got.params)
	}
	if !strings.Contains(got.policy, `"Resource":"arn:aws:ssm:eu-west-1:123456789012:parameter/mywebchat/bundle-token"`) {
		t.Errorf("the instance role may not read exactly /mywebchat/bundle-token:\n%s", got.policy)
	}
	if !strings.Contains(got.userData, "MYWEBCHAT_BUNDLE_TOKEN_PARAM='/mywebchat/bundle-token'") ||
		!strings.Contains(got.userData, "MYWEBCHAT_REPO='Acme/MyWebChat'") ||
		!strings.Contains(got.userData, "api=${MYWEBCHAT_GITHUB_API:-https://api.github.com}/repos/$MYWEBCHAT_REPO/releases/latest") {
		t.Errorf("the launch template's user data does not fetch through the API with the releases' token:\n%s", got.userData)
	}

	// --keep-token --private-repo keeps both; without a stored releases' token it refuses.
	if out, errOut, code = e.run(t, "", "--repo", "Acme/MyWebChat", "--region", "eu-west-1", "--keep-token", "--private-repo"); code != 0 {
		t.Fatalf("up.sh --keep-token --private-repo exit %d\n%s%s", code, out, errOut)
	}
	if hostStack(t, e).params["BundleTokenParameterName"] != "/mywebchat/bundle-token" {
		t.Errorf("--keep-token --private-repo dropped the releases' token from the host stack")
	}
}
