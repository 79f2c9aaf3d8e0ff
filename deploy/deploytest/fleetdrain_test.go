package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fleetDrainStubs stand in for curl (the instance metadata: InService for two
// polls, then Terminated), systemctl, docker and aws; each logs its call.
func fleetDrainStubs(dir string) map[string]string {
	calls := filepath.Join(dir, "calls")
	polls := filepath.Join(dir, "polls")
	return map[string]string{
		"curl": `#!/bin/sh
case "$*" in
*"-X PUT"*/latest/api/token*) echo imds-token; exit 0 ;;
esac
case "$*" in *"X-aws-ec2-metadata-token: imds-token"*) ;; *) echo "curl without the IMDSv2 token: $*" >>"` + calls + `"; exit 22 ;; esac
case "$*" in
*/latest/meta-data/instance-id) echo i-0abc ;;
*/latest/meta-data/autoscaling/target-lifecycle-state)
	echo poll >>"` + polls + `"
	if [ "$(wc -l <"` + polls + `")" -le 2 ]; then echo InService; else echo Terminated; fi ;;
*) exit 22 ;;
esac
`,
		"systemctl": "#!/bin/sh\necho \"systemctl $*\" >>'" + calls + "'\n",
		"docker":    "#!/bin/sh\necho \"docker $*\" >>'" + calls + "'\ncase \"$1\" in ps) printf 'c1\\nc2\\n' ;; esac\n",
		"aws":       "#!/bin/sh\necho \"aws $*\" >>'" + calls + "'\n",
	}
}

// TestFleetDrain runs deploy/fleet-drain.sh with stand-ins: it must wait while
// the instance is in service, then stop the agent, stop the app's containers
// with the drain timeout, and only then complete the lifecycle action.
func TestFleetDrain(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	for name, body := range fleetDrainStubs(dir) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run := func(env ...string) (string, error) {
		cmd := exec.Command("sh", "../fleet-drain.sh")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "POLL_SECONDS=0.01")
		cmd.Env = append(cmd.Env, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("ASG_NAME=", "LIFECYCLE_HOOK=drain", "AWS_REGION=eu-west-1"); err == nil || !strings.Contains(out, "set ASG_NAME") {
		t.Errorf("without ASG_NAME: %v %s; want a clear error", err, out)
	}
	out, err := run("ASG_NAME=fleet-hosts", "LIFECYCLE_HOOK=drain", "AWS_REGION=eu-west-1", "APP_NAME=mywebchat", "DRAIN_SECONDS=30")
	if err != nil {
		t.Fatalf("fleet-drain: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "calls"))
	want := strings.Join([]string{
		"systemctl stop deploy-agent.service",
		"docker ps -q --filter label=mywebchat.app=mywebchat",
		"docker stop -t 30 c1 c2",
		"aws autoscaling complete-lifecycle-action --region eu-west-1 --auto-scaling-group-name fleet-hosts --lifecycle-hook-name drain --instance-id i-0abc --lifecycle-action-result CONTINUE",
	}, "\n") + "\n"
	if string(b) != want {
		t.Errorf("calls:\n%s\nwant:\n%s", b, want)
	}
	if polls, _ := os.ReadFile(filepath.Join(dir, "polls")); strings.Count(string(polls), "poll") != 3 {
		t.Errorf("polled %d times, want 3 (twice in service, then Terminated)", strings.Count(string(polls), "poll"))
	}
}
