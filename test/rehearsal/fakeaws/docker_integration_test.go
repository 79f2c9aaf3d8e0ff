//go:build integration

package main

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDockerHost runs documents on a real container, the way the rehearsal's
// stand-in hosts are driven: as root, in the orchestration folder, under the
// execution timeout (which kills the script's whole session inside the
// container), and Undeliverable once the host's agent is down.
func TestDockerHost(t *testing.T) {
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Fatalf("docker engine unreachable (run scripts/setup.sh): %v %s", err, out)
	}
	b := make([]byte, 4)
	rand.Read(b)
	name := "fakeaws-it-" + hex.EncodeToString(b)
	image := "mywebchat/debian-base:local"
	if out, err := exec.Command("docker", "run", "-d", "--name", name, "--user", "65534", image, "sleep", "3600").CombinedOutput(); err != nil {
		t.Fatalf("docker run %s: %v %s", image, err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", name).Run() })

	f := newFake(t)
	f.addInstance(Instance{InstanceId: "i-d1", Tags: map[string]string{"App": "chat"}, Managed: true,
		Exec: Exec{Kind: "docker", Container: name, AgentCheck: "test ! -e /tmp/agent-down"}})

	// The document's own script, as root, with the agent's PATH, in the
	// orchestration folder, its parameters pasted in.
	f.document("Who", withTimeoutParam(`schemaVersion: "2.2"
parameters:
  Word: {type: String, default: "x", allowedPattern: "^[a-z]+\\z"}
mainSteps:
  - action: aws:runShellScript
    name: who
    inputs:
      timeoutSeconds: "{{ Timeout }}"
      runCommand:
        - "echo uid=$(id -u) word={{ Word }} dir=$(pwd) path=$PATH"
        - "read -r line || echo stdin-empty"
`, "30"))
	id := strings.TrimSpace(f.mustCall("ssm", "send-command", "--document-name", "Who", "--instance-ids", "i-d1",
		"--parameters", "Word=hello", "--query", "Command.CommandId", "--output", "text"))
	if st := f.wait(id, 60*time.Second); st != "Success" {
		t.Fatalf("command %s: %v", st, f.invocations(id))
	}
	got := f.mustCall("ssm", "get-command-invocation", "--command-id", id, "--instance-id", "i-d1", "--query", "StandardOutputContent", "--output", "text")
	for _, want := range []string{"uid=0 ", "word=hello ", "dir=/var/lib/amazon/ssm/i-d1/document/orchestration/" + id + "/who ",
		"path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "stdin-empty"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}

	// Execution timeout: a background child of the script dies with it.
	f.document("Hang", withTimeoutParam(`schemaVersion: "2.2"
parameters:
mainSteps:
  - action: aws:runShellScript
    name: hang
    inputs:
      timeoutSeconds: "{{ Timeout }}"
      runCommand:
        - "sleep 3000 &"
        - "echo $! >/tmp/hang.pid"
        - "wait"
`, "2"))
	id = strings.TrimSpace(f.mustCall("ssm", "send-command", "--document-name", "Hang", "--instance-ids", "i-d1",
		"--query", "Command.CommandId", "--output", "text"))
	if st := f.wait(id, 60*time.Second); st != "Failed" {
		t.Fatalf("command %s, want Failed", st)
	}
	if got := f.invocations(id)[0]; got != "i-d1 TimedOut ExecutionTimedOut 137" {
		t.Errorf("invocation %q", got)
	}
	// Dead or a zombie (the container's PID 1 here is no init that reaps).
	out, err := exec.Command("docker", "exec", "-u", "0", name, "sh", "-c",
		`p=$(cat /tmp/hang.pid) && { cat /proc/$p/stat 2>/dev/null || echo gone; }`).CombinedOutput()
	if st := string(out); err != nil || !(strings.TrimSpace(st) == "gone" || strings.Contains(st, ") Z ")) {
		t.Errorf("the script's child after the timeout: %s %v", out, err)
	}

	// The agent goes down: describe-instance-information and delivery see it.
	if out, err := exec.Command("docker", "exec", "-u", "0", name, "touch", "/tmp/agent-down").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if got := f.mustCall("ssm", "describe-instance-information", "--filters", "Key=InstanceIds,Values=i-d1", "--query", "InstanceInformationList[0].PingStatus", "--output", "text"); got != "ConnectionLost\n" {
		t.Errorf("PingStatus %q, want ConnectionLost", got)
	}
	id = strings.TrimSpace(f.mustCall("ssm", "send-command", "--document-name", "Who", "--instance-ids", "i-d1",
		"--query", "Command.CommandId", "--output", "text"))
	f.wait(id, 60*time.Second)
	if got := f.invocations(id)[0]; got != "i-d1 Failed Undeliverable -1" {
		t.Errorf("invocation %q, want Undeliverable", got)
	}
	// A stopped host is down too.
	exec.Command("docker", "exec", "-u", "0", name, "rm", "/tmp/agent-down").Run()
	if out, err := exec.Command("docker", "stop", "-t", "0", name).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if got := f.mustCall("ssm", "describe-instance-information", "--filters", "Key=InstanceIds,Values=i-d1", "--query", "InstanceInformationList[0].PingStatus", "--output", "text"); got != "ConnectionLost\n" {
		t.Errorf("PingStatus of a stopped host %q, want ConnectionLost", got)
	}
}
