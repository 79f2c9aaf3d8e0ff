package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCredHelper runs deploy/docker-credential-mywebchat-ssm.sh with a stand-in
// `aws` first on PATH that answers get-parameter with the content of the file
// param (the parameter's current value) and records its arguments.
func runCredHelper(t *testing.T, env, param, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := t.TempDir()
	fakeAWS := `#!/bin/sh
printf '%s\n' "$*" >>"` + param + `.calls"
cat "` + param + `"
`
	if err := os.WriteFile(filepath.Join(bin, "aws"), []byte(fakeAWS), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", append([]string{"../docker-credential-mywebchat-ssm.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "MYWEBCHAT_REGISTRY_ENV="+env)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestCredentialHelperRotation: every `get` reads the parameter again, so a
// put-parameter is the whole rotation; the token is in no argument.
func TestCredentialHelperRotation(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "registry.env")
	os.WriteFile(env, []byte("GHCR_USER=acme-bot\nGHCR_TOKEN_PARAM=/mywebchat/ghcr-pull-token\nAWS_REGION=eu-west-1\n"), 0o644)
	param := filepath.Join(dir, "param")
	for _, token := range []string{"ghp_first0123", "github_pat_second_0123"} {
		os.WriteFile(param, []byte(token+"\n"), 0o600)
		out, errOut, err := runCredHelper(t, env, param, "ghcr.io\n", "get")
		if err != nil {
			t.Fatalf("get: %v\n%s", err, errOut)
		}
		want := `{"ServerURL":"ghcr.io","Username":"acme-bot","Secret":"` + token + `"}` + "\n"
		if out != want {
			t.Errorf("get answered %q, want %q", out, want)
		}
	}
	calls, _ := os.ReadFile(param + ".calls")
	want := "ssm get-parameter --region eu-west-1 --name /mywebchat/ghcr-pull-token --with-decryption --query Parameter.Value --output text\n"
	if string(calls) != want+want {
		t.Errorf("aws calls:\n%s\nwant twice:\n%s", calls, want)
	}
}

// TestCredentialHelperSnap: where aws is a snap (Ubuntu), which cannot start inside the
// agent's sandbox, the helper runs it as a transient unit through systemd-run.
func TestCredentialHelperSnap(t *testing.T) {
	dir := t.TempDir()
	env := filepath.Join(dir, "registry.env")
	os.WriteFile(env, []byte("GHCR_USER=acme\nGHCR_TOKEN_PARAM=/mywebchat/ghcr-pull-token\nAWS_REGION=eu-west-1\n"), 0o644)
	snapBin := filepath.Join(dir, "snap", "bin")
	os.MkdirAll(snapBin, 0o755)
	os.WriteFile(filepath.Join(snapBin, "aws"), []byte("#!/bin/sh\necho ghp_fromTheSnap\n"), 0o755)
	sysBin := filepath.Join(dir, "sbin")
	os.Mkdir(sysBin, 0o755)
	runLog := filepath.Join(dir, "systemd-run.calls")
	// The stand-in skips systemd-run's options and runs the command, as the unit would.
	os.WriteFile(filepath.Join(sysBin, "systemd-run"), []byte(`#!/bin/sh
printf '%s\n' "$*" >>'`+runLog+`'
while [ "${1#--}" != "$1" ]; do shift; done
exec "$@"
`), 0o755)
	cmd := exec.Command("sh", "../docker-credential-mywebchat-ssm.sh", "get")
	cmd.Env = append(os.Environ(), "PATH="+snapBin+":"+sysBin+":"+os.Getenv("PATH"), "MYWEBCHAT_REGISTRY_ENV="+env)
	cmd.Stdin = strings.NewReader("ghcr.io\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `"Secret":"ghp_fromTheSnap"`) {
		t.Fatalf("get: %v, %q", err, out)
	}
	calls, _ := os.ReadFile(runLog)
	if !strings.HasPrefix(string(calls), "--quiet --pipe --wait --collect --service-type=exec "+filepath.Join(snapBin, "aws")+" ssm get-parameter") {
		t.Errorf("systemd-run calls: %q; want the snap's aws run through it", calls)
	}
}

func TestCredentialHelperRefuses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.env")
	os.WriteFile(good, []byte("GHCR_USER=acme\nGHCR_TOKEN_PARAM=/mywebchat/ghcr-pull-token\nAWS_REGION=eu-west-1\n"), 0o644)
	badRegion := filepath.Join(dir, "bad.env")
	os.WriteFile(badRegion, []byte("GHCR_USER=acme\nGHCR_TOKEN_PARAM=/mywebchat/ghcr-pull-token\nAWS_REGION='eu-west-1 --endpoint-url http://evil'\n"), 0o644)
	param := filepath.Join(dir, "param")
	tests := []struct {
		name, env, token, stdin string
		args                    []string
		wantOut, wantErr        string
	}{
		{"other registry", good, "ghp_x", "quay.io\n", []string{"get"}, "credentials not found", ""},
		{"not a token", good, `ghp_x","Secret":"y`, "ghcr.io\n", []string{"get"}, "", "does not hold a GitHub token"},
		{"empty parameter", good, "", "ghcr.io\n", []string{"get"}, "", "does not hold a GitHub token"},
		{"bad region", badRegion, "ghp_x", "ghcr.io\n", []string{"get"}, "", "AWS_REGION"},
		{"no settings", filepath.Join(dir, "none.env"), "ghp_x", "ghcr.io\n", []string{"get"}, "", "cannot read"},
		{"no verb", good, "ghp_x", "", nil, "", "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(param, []byte(tt.token+"\n"), 0o600)
			out, errOut, err := runCredHelper(t, tt.env, param, tt.stdin, tt.args...)
			if err == nil {
				t.Fatalf("exit 0, want a failure; stdout %q", out)
			}
			if !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stdout %q stderr %q, want %q / %q", out, errOut, tt.wantOut, tt.wantErr)
			}
			if strings.Contains(out, "Secret") {
				t.Errorf("stdout carries a secret after a failure: %q", out)
			}
		})
	}
	// store (what `docker login` calls) keeps nothing and succeeds.
	if _, errOut, err := runCredHelper(t, good, param, `{"ServerURL":"ghcr.io","Username":"a","Secret":"b"}`, "store"); err != nil {
		t.Errorf("store: %v %s", err, errOut)
	}
}
