package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/rehearsal/fakeaws/fakeawstest"
)

// awsBin is the fake CLI built once for the tests: they drive it as the
// workflow does, one short process per call, with the detached runner.
var awsBin string

func TestMain(m *testing.M) { fakeawstest.Main(m, &awsBin) }

// fake is one state directory and the calls against it.
type fake struct {
	t   *testing.T
	dir string
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{t: t, dir: t.TempDir()}
	t.Cleanup(f.stopCommands)
	return f
}

// stopCommands cancels what a failed test may have left running.
func (f *fake) stopCommands() {
	fakeawstest.StopCommands(f.t, func(args ...string) (string, error) {
		out, stderr, code := f.call(args...)
		if code != 0 {
			return "", fmt.Errorf("aws %v: exit %d: %s", args, code, stderr)
		}
		return out, nil
	})
}

// call runs the fake CLI and returns stdout, stderr and the exit code.
func (f *fake) call(args ...string) (string, string, int) {
	f.t.Helper()
	cmd := exec.Command(awsBin, args...)
	cmd.Env = append(os.Environ(), stateEnv+"="+f.dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatalf("run aws %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (f *fake) mustCall(args ...string) string {
	f.t.Helper()
	out, errOut, code := f.call(args...)
	if code != 0 {
		f.t.Fatalf("aws %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func (f *fake) addInstance(in Instance) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Join(f.dir, "instances"), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(f.dir, "instances", in.InstanceId+".json"), in); err != nil {
		f.t.Fatal(err)
	}
}

// local registers a managed, tagged simulated target.
func (f *fake) local(id, delay, script string) {
	f.addInstance(Instance{InstanceId: id, Tags: map[string]string{"App": "chat"}, Managed: true,
		Exec: Exec{Kind: "local", Dir: filepath.Join(f.dir, "hosts", id), Delay: delay, Script: script}})
}

func (f *fake) document(name, content string) {
	f.t.Helper()
	p := filepath.Join(f.t.TempDir(), "doc.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
	f.mustCall("ssm", "create-document", "--name", name, "--content", "file://"+p, "--document-type", "Command", "--document-format", "YAML")
}

// wait polls list-commands until the command reaches a terminal status.
func (f *fake) wait(id string, within time.Duration) string {
	f.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := strings.TrimSpace(f.mustCall("ssm", "list-commands", "--command-id", id, "--query", "Commands[0].Status", "--output", "text"))
		switch st {
		case "Pending", "InProgress", "Cancelling":
		default:
			return st
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("command %s still %s after %s", id, st, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// invocations returns "instance status details code" per invocation.
func (f *fake) invocations(id string) []string {
	f.t.Helper()
	out := f.mustCall("ssm", "list-command-invocations", "--command-id", id, "--query", "CommandInvocations[].InstanceId", "--output", "text")
	var lines []string
	for _, iid := range strings.Fields(out) {
		l := f.mustCall("ssm", "get-command-invocation", "--command-id", id, "--instance-id", iid,
			"--query", "[InstanceId,Status,StatusDetails,ResponseCode]", "--output", "text")
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return lines
}

const shellDoc = `schemaVersion: "2.2"
description: test
parameters:
  Word:
    type: String
    default: "hello"
    allowedPattern: "^[a-z]+\\z"
  Mode:
    type: String
    default: "a"
    allowedValues: ["a", "b"]
mainSteps:
  - action: aws:runShellScript
    name: say
    inputs:
      timeoutSeconds: "{{ Timeout }}"
      runCommand:
        - "echo 'word={{Word}}' mode={{ Mode }} id=$FAKESSM_INSTANCE_ID"
        - "echo to-stderr >&2"
        - "exit ${EXIT_CODE:-0}"
`

func withTimeoutParam(doc, def string) string {
	return strings.Replace(doc, "parameters:\n", "parameters:\n  Timeout:\n    type: String\n    default: \""+def+"\"\n", 1)
}

func send(f *fake, extra ...string) string {
	f.t.Helper()
	args := append([]string{"ssm", "send-command", "--document-name", "Doc", "--query", "Command.CommandId", "--output", "text"}, extra...)
	return strings.TrimSpace(f.mustCall(args...))
}

func TestRunDocumentScript(t *testing.T) {
	f := newFake(t)
	f.document("Doc", withTimeoutParam(shellDoc, "30"))
	f.local("i-1", "", "")
	id := send(f, "--targets", "Key=tag:App,Values=chat", "--parameters", `{"Word":["abc"]}`)
	if st := f.wait(id, 20*time.Second); st != "Success" {
		t.Fatalf("command status %s, want Success", st)
	}
	out := f.mustCall("ssm", "get-command-invocation", "--command-id", id, "--instance-id", "i-1", "--query", "StandardOutputContent", "--output", "text")
	if want := "word=abc mode=a id=i-1\n"; !strings.HasPrefix(out, want) {
		t.Errorf("stdout %q, want %q", out, want)
	}
	errOut := f.mustCall("ssm", "get-command-invocation", "--command-id", id, "--instance-id", "i-1", "--query", "StandardErrorContent", "--output", "text")
	if !strings.HasPrefix(errOut, "to-stderr") {
		t.Errorf("stderr %q", errOut)
	}
	// The script ran as a file with /bin/sh, in the orchestration folder.
	if _, err := os.Stat(filepath.Join(f.dir, "hosts", "i-1", "orchestration", id, "say", "_script.sh")); err != nil {
		t.Error(err)
	}
}

// TestParameterValidation: a refused value fails send-command and runs
// nothing. The trailing newline case only fails because Java's engine is
// asked with \z; the document's own pattern is checked in deploy/deploytest.
func TestParameterValidation(t *testing.T) {
	f := newFake(t)
	f.document("Doc", withTimeoutParam(shellDoc, "30"))
	f.local("i-1", "", "")
	for _, tt := range []struct {
		name, params, want string
	}{
		{"pattern", `{"Word":["ABC"]}`, "failed to satisfy constraint"},
		{"newline after value", `{"Word":["abc\n"]}`, "failed to satisfy constraint"},
		{"injection", `{"Word":["abc';reboot;'"]}`, "failed to satisfy constraint"},
		{"allowed values", `{"Mode":["c"]}`, "not one of the allowed values"},
		{"unknown", `{"Other":["x"]}`, "does not support parameter"},
		{"two values", `{"Word":["a","b"]}`, "exactly one value"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := f.call("ssm", "send-command", "--document-name", "Doc", "--targets", "Key=tag:App,Values=chat", "--parameters", tt.params)
			if code != exitServiceError || !strings.Contains(errOut, "InvalidParameters") || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q: want 254 InvalidParameters %q", code, errOut, tt.want)
			}
		})
	}
	if out := f.mustCall("ssm", "list-commands", "--query", "length(Commands)", "--output", "text"); strings.TrimSpace(out) != "0" {
		t.Errorf("refused sends left %s commands", out)
	}
	// A required parameter without a value.
	f.document("Req", "schemaVersion: \"2.2\"\nparameters:\n  Must: {type: String}\nmainSteps:\n  - action: aws:runShellScript\n    name: x\n    inputs: {runCommand: [\"true\"]}\n")
	if _, errOut, code := f.call("ssm", "send-command", "--document-name", "Req", "--instance-ids", "i-1"); code != exitServiceError || !strings.Contains(errOut, "requires parameter") {
		t.Errorf("missing parameter: exit %d %q", code, errOut)
	}
	if _, errOut, code := f.call("ssm", "send-command", "--document-name", "Nope", "--instance-ids", "i-1"); code != exitServiceError || !strings.Contains(errOut, "InvalidDocument") {
		t.Errorf("unknown document: exit %d %q", code, errOut)
	}
	if _, errOut, code := f.call("ssm", "send-command", "--document-name", "Doc", "--instance-ids", "i-1", "--max-concurrecny", "1"); code != exitUsage || !strings.Contains(errOut, "Unknown options") {
		t.Errorf("misspelt option: exit %d %q", code, errOut)
	}
}

// TestRateControl: one at a time, stop at the first failure; the hosts not
// reached are Terminated and the failure is reported with its exit code.
func TestRateControl(t *testing.T) {
	f := newFake(t)
	f.document("Doc", withTimeoutParam(shellDoc, "30"))
	// Each host records when it ran, to check that no two overlapped.
	script := `date +%s.%N >start; sleep 0.2; date +%s.%N >end; [ "$FAKESSM_INSTANCE_ID" != i-3 ] || exit 7`
	for i := 1; i <= 5; i++ {
		f.local(fmt.Sprintf("i-%d", i), "", script)
	}
	id := send(f, "--targets", "Key=tag:App,Values=chat", "--max-concurrency", "1", "--max-errors", "0")
	if st := f.wait(id, 30*time.Second); st != "Failed" {
		t.Fatalf("command %s, want Failed", st)
	}
	got := strings.Join(f.invocations(id), "\n")
	want := "i-1 Success Success 0\ni-2 Success Success 0\ni-3 Failed Failed 7\ni-4 Cancelled Terminated -1\ni-5 Cancelled Terminated -1"
	if got != want {
		t.Errorf("invocations:\n%s\nwant:\n%s", got, want)
	}
	var prevEnd string
	for i := 1; i <= 3; i++ {
		d := filepath.Join(f.dir, "hosts", fmt.Sprintf("i-%d", i), "orchestration", id, "say")
		start, _ := os.ReadFile(filepath.Join(d, "start"))
		end, _ := os.ReadFile(filepath.Join(d, "end"))
		if prevEnd != "" && string(start) < prevEnd {
			t.Errorf("i-%d started at %s before the previous host ended at %s", i, start, prevEnd)
		}
		prevEnd = string(end)
	}
	counts := f.mustCall("ssm", "list-commands", "--command-id", id, "--query", "Commands[0].[TargetCount,CompletedCount,ErrorCount]", "--output", "text")
	if strings.Join(strings.Fields(counts), " ") != "5 5 1" {
		t.Errorf("counts %q, want 5 5 1", counts)
	}
}

// TestConcurrencyPercent: 50% of 4 targets runs two at a time.
func TestConcurrencyPercent(t *testing.T) {
	f := newFake(t)
	f.document("Doc", withTimeoutParam(shellDoc, "30"))
	// Each host waits until a second one is running, or gives up: with
	// concurrency 2 all succeed, with 1 they would all fail.
	script := `touch "$FAKESSM_INSTANCE_ID"; n=0; while [ $(ls ../../../../*/orchestration/"$FAKESSM_COMMAND_ID"/say/i-* 2>/dev/null | wc -l) -lt 2 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; [ $n -lt 50 ]`
	for i := 1; i <= 4; i++ {
		f.local(fmt.Sprintf("i-%d", i), "", script)
	}
	id := send(f, "--targets", "Key=tag:App,Values=chat", "--max-concurrency", "50%", "--max-errors", "0")
	if st := f.wait(id, 30*time.Second); st != "Success" {
		t.Fatalf("command %s, want Success; %v", st, f.invocations(id))
	}
}

// TestExecutionTimeout: the document's timeoutSeconds kills the script's
// whole session and reports TimedOut / ExecutionTimedOut.
func TestExecutionTimeout(t *testing.T) {
	f := newFake(t)
	f.document("Doc", withTimeoutParam(shellDoc, "1"))
	pidFile := filepath.Join(f.dir, "child.pid")
	f.local("i-1", "", "sleep 60 & echo $! >"+pidFile+"; wait")
	id := send(f, "--instance-ids", "i-1")
	start := time.Now()
	if st := f.wait(id, 20*time.Second); st != "Failed" {
		t.Fatalf("command %s, want Failed", st)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("timeout of 1s took %s", el)
	}
	if got := f.invocations(id); got[0] != "i-1 TimedOut ExecutionTimedOut 137" {
		t.Errorf("invocation %q", got[0])
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the script's background child %d survived the timeout", pid)
	}
}

// TestCancel: running invocations are killed, unsent ones never run.
func TestCancel(t *testing.T) {
	f := newFake(t)
	f.document("Doc", withTimeoutParam(shellDoc, "60"))
	f.local("i-1", "", "touch started; sleep 60")
	f.local("i-2", "", "touch started")
	id := send(f, "--targets", "Key=tag:App,Values=chat", "--max-concurrency", "1")
	started := filepath.Join(f.dir, "hosts", "i-1", "orchestration", id, "say", "started")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("i-1 never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.mustCall("ssm", "cancel-command", "--command-id", id)
	if st := f.wait(id, 10*time.Second); st != "Cancelled" {
		t.Fatalf("command %s, want Cancelled", st)
	}
	got := strings.Join(f.invocations(id), "\n")
	if want := "i-1 Cancelled Cancelled 137\ni-2 Cancelled Cancelled -1"; got != want {
		t.Errorf("invocations:\n%s\nwant:\n%s", got, want)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "hosts", "i-2", "orchestration", id)); err == nil {
		t.Error("i-2 ran after the cancel")
	}
	// Cancelling a finished command changes nothing.
	f.mustCall("ssm", "cancel-command", "--command-id", id)
	if _, errOut, code := f.call("ssm", "cancel-command", "--command-id", "nope"); code != exitServiceError || !strings.Contains(errOut, "InvalidCommandId") {
		t.Errorf("unknown command: exit %d %q", code, errOut)
	}
}

// TestUndeliverableAndUnmanaged: a host whose agent is down is Undeliverable
// (not an error under MaxErrors, so the others still run); a tagged
// instance SSM does not manage is no target at all.
func TestUndeliverableAndUnmanaged(t *testing.T) {
	f := newFake(t)
	f.document("Doc", withTimeoutParam(shellDoc, "30"))
	f.local("i-1", "", "")
	f.addInstance(Instance{InstanceId: "i-2", Tags: map[string]string{"App": "chat"}, Managed: true, PingStatus: "ConnectionLost",
		Exec: Exec{Kind: "local", Dir: filepath.Join(f.dir, "hosts", "i-2")}})
	f.local("i-3", "", "")
	f.addInstance(Instance{InstanceId: "i-4", Tags: map[string]string{"App": "chat"}})
	id := send(f, "--targets", "Key=tag:App,Values=chat", "--max-concurrency", "1", "--max-errors", "0")
	if st := f.wait(id, 20*time.Second); st != "Failed" {
		t.Fatalf("command %s, want Failed (Incomplete)", st)
	}
	got := strings.Join(f.invocations(id), "\n")
	if want := "i-1 Success Success 0\ni-2 Failed Undeliverable -1\ni-3 Success Success 0"; got != want {
		t.Errorf("invocations:\n%s\nwant:\n%s", got, want)
	}
	if d := f.mustCall("ssm", "list-commands", "--command-id", id, "--query", "Commands[0].StatusDetails", "--output", "text"); strings.TrimSpace(d) != "Incomplete" {
		t.Errorf("status details %q, want Incomplete", d)
	}
	info := f.mustCall("ssm", "describe-instance-information", "--filters", "Key=tag:App,Values=chat", "--query", "InstanceInformationList[].[InstanceId,PingStatus]", "--output", "text")
	if want := "i-1\tOnline\ni-2\tConnectionLost\ni-3\tOnline\n"; info != want {
		t.Errorf("describe-instance-information:\n%s\nwant:\n%s", info, want)
	}
	ec2 := f.mustCall("ec2", "describe-instances", "--filters", "Name=tag:App,Values=chat", "Name=instance-state-name,Values=pending,running",
		"--query", "Reservations[].Instances[].InstanceId", "--output", "text")
	if want := "i-1\ti-2\ti-3\ti-4\n"; ec2 != want {
		t.Errorf("describe-instances %q, want %q", ec2, want)
	}
	if _, errOut, code := f.call("ssm", "send-command", "--document-name", "Doc", "--instance-ids", "i-1", "i-4"); code != exitServiceError || !strings.Contains(errOut, "InvalidInstanceId") {
		t.Errorf("send to an unmanaged instance: exit %d %q", code, errOut)
	}
}

// TestOutputTruncation: 24,000 characters through get-command-invocation,
// 2,500 through list-command-invocations --details; counted in characters.
func TestOutputTruncation(t *testing.T) {
	f := newFake(t)
	f.document("Doc", withTimeoutParam(shellDoc, "30"))
	f.local("i-1", "", `i=0; while [ $i -lt 3000 ]; do printf 'é123456789'; i=$((i+1)); done`)
	id := send(f, "--instance-ids", "i-1")
	f.wait(id, 30*time.Second)
	var inv struct{ StandardOutputContent string }
	if err := json.Unmarshal([]byte(f.mustCall("ssm", "get-command-invocation", "--command-id", id, "--instance-id", "i-1")), &inv); err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(inv.StandardOutputContent)); n != 24000 {
		t.Errorf("output %d characters, want 24000", n)
	}
	out := f.mustCall("ssm", "list-command-invocations", "--command-id", id, "--details", "--query", "CommandInvocations[0].CommandPlugins[0].Output", "--output", "text")
	if n := len([]rune(strings.TrimSuffix(out, "\n"))); n != 2500 {
		t.Errorf("details output %d characters, want 2500", n)
	}
}

func TestParameterStore(t *testing.T) {
	f := newFake(t)
	if _, errOut, code := f.call("ssm", "get-parameter", "--name", "/app/x"); code != exitServiceError || !strings.Contains(errOut, "ParameterNotFound") {
		t.Errorf("missing parameter: exit %d %q", code, errOut)
	}
	f.mustCall("ssm", "put-parameter", "--name", "/app/x", "--type", "String", "--value", `{"a":1}`)
	if _, errOut, code := f.call("ssm", "put-parameter", "--name", "/app/x", "--type", "String", "--value", "y"); code != exitServiceError || !strings.Contains(errOut, "ParameterAlreadyExists") {
		t.Errorf("put without --overwrite: exit %d %q", code, errOut)
	}
	out := f.mustCall("ssm", "put-parameter", "--name", "/app/x", "--type", "String", "--value", "y", "--overwrite", "--query", "Version", "--output", "text")
	if out != "2\n" {
		t.Errorf("version %q, want 2", out)
	}
	if v := f.mustCall("ssm", "get-parameter", "--name", "/app/x", "--query", "Parameter.Value", "--output", "text"); v != "y\n" {
		t.Errorf("value %q", v)
	}
	f.mustCall("ssm", "put-parameter", "--name", "/app/token", "--type", "SecureString", "--value", "s3cret")
	if v := f.mustCall("ssm", "get-parameter", "--name", "/app/token", "--query", "Parameter.Value", "--output", "text"); strings.Contains(v, "s3cret") {
		t.Errorf("SecureString without --with-decryption revealed %q", v)
	}
	if v := f.mustCall("ssm", "get-parameter", "--name", "/app/token", "--with-decryption", "--query", "Parameter.Value", "--output", "text"); v != "s3cret\n" {
		t.Errorf("decrypted %q", v)
	}
}

func TestTagsAndFaults(t *testing.T) {
	f := newFake(t)
	f.addInstance(Instance{InstanceId: "i-1", Managed: true, Exec: Exec{Kind: "local", Dir: f.dir}})
	f.mustCall("ec2", "create-tags", "--resources", "i-1", "--tags", "Key=App,Value=chat", "Key=Name,Value=a")
	out := f.mustCall("ssm", "describe-instance-information", "--filters", "Key=tag:App,Values=chat", "--query", "InstanceInformationList[].InstanceId", "--output", "text")
	if out != "i-1\n" {
		t.Errorf("after create-tags: %q", out)
	}
	f.mustCall("ec2", "delete-tags", "--resources", "i-1", "--tags", "Key=App")
	out = f.mustCall("ssm", "describe-instance-information", "--filters", "Key=tag:App,Values=chat", "--output", "json")
	if !strings.Contains(out, `"InstanceInformationList": []`) {
		t.Errorf("after delete-tags: %s", out)
	}
	if err := os.WriteFile(filepath.Join(f.dir, "faults", "ssm.list-commands"), []byte("ThrottlingException: Rate exceeded\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := f.call("ssm", "list-commands")
	if code != exitServiceError || !strings.Contains(errOut, "An error occurred (ThrottlingException) when calling the ListCommands operation: Rate exceeded") {
		t.Errorf("fault: exit %d %q", code, errOut)
	}
	log, err := os.ReadFile(filepath.Join(f.dir, "calls.log"))
	if err != nil || !strings.Contains(string(log), `"argv":["ssm","list-commands"]`) {
		t.Errorf("calls.log: %v %s", err, log)
	}
}

func TestTextOutput(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"scalar", `"abc"`, "abc\n"},
		{"null", `null`, "None\n"},
		{"number and bool", `[3, true, 1.5]`, "3\tTrue\t1.5\n"},
		{"list of lists", `[["a","Success",0],["b","Failed",1]]`, "a\tSuccess\t0\nb\tFailed\t1\n"},
		{"empty list", `[]`, ""},
		{"objects", `[{"B":"2","A":"1"},{"A":"3"}]`, "1\t2\n3\t\n"},
		{"nested", `{"Command":{"CommandId":"x","InstanceIds":["i-1","i-2"]}}`, "COMMAND\tx\nINSTANCEIDS\ti-1\nINSTANCEIDS\ti-2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tt.in), &v); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			formatText(&b, v)
			if b.String() != tt.want {
				t.Errorf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestShorthand(t *testing.T) {
	m, err := parseShorthand("Key=tag:App,Values=a,b", "Values")
	if err != nil || strings.Join(m["Key"], ",") != "tag:App" || strings.Join(m["Values"], ",") != "a,b" {
		t.Errorf("got %v %v", m, err)
	}
	if _, err := parseShorthand("Key=tag:App,oops"); err == nil {
		t.Error("a bare word after a scalar member was accepted")
	}
	m, err = parseShorthand(`{"ImageRef":["x"],"NginxImageRef":[""]}`)
	if err != nil || m["NginxImageRef"][0] != "" || m["ImageRef"][0] != "x" {
		t.Errorf("json: %v %v", m, err)
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper is dead).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
