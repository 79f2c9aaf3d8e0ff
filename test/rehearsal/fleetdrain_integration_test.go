//go:build integration

package rehearsal

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

const (
	// fleetIMDS is the stand-in instance metadata on a host: files that curl
	// reads through IMDS_URL (file://), the path under it as EC2's.
	fleetIMDS = "/var/lib/fake-imds"
	// fleetStubs holds the stand-in aws the drain's unit finds first on its
	// PATH: it prints its arguments to the unit's journal and succeeds.
	fleetStubs   = "/usr/local/lib/fleet-drain-stubs"
	fleetStack   = "rehearsal"
	fleetLogMark = "fleet-drain-stub: aws "
)

// fleetInstallLines are the fleet stack's user data lines that install the
// drain on a host (deploy/aws/fleet.yaml, from the comment that introduces
// them to the line that starts the unit), with the stack's name and region.
func fleetInstallLines(t *testing.T, root string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy/aws/fleet.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\n[ \t]*# Taken out by Auto Scaling[^\n]*\n(.*?systemctl enable --now mywebchat-fleet-drain\.service)\n`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/aws/fleet.yaml's user data has no lines installing mywebchat-fleet-drain.service")
	}
	var lines []string
	for _, l := range strings.Split(string(m[1]), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	s := strings.Join(lines, "\n")
	return strings.NewReplacer("${AWS::StackName}", fleetStack, "${AWS::Region}", region).Replace(s)
}

// fleetDrain runs mywebchat-fleet-drain.service on a host that serves a
// release, in the sandbox its unit file gives it, installed by the fleet
// stack's own user data lines. While the instance is in service nothing
// happens; once its metadata says Terminated, the unit stops the agent,
// drains the chat (a connected client gets 1012, the color exits 0 rather
// than being killed), completes the lifecycle action with the instance's
// id, and exits successfully. Only the instance metadata and the aws CLI
// are stand-ins. It ends the host's service, so it runs last.
func (w *world) fleetDrain(t *testing.T) {
	h := w.hosts[len(w.hosts)-1]
	st := h.status(t)
	if st.Active == nil {
		t.Fatalf("%s serves no release", h.name)
	}
	h.exec(`set -e
mkdir -p ` + fleetIMDS + `/latest/api ` + fleetIMDS + `/latest/meta-data/autoscaling ` + fleetStubs + `
echo imds-token >` + fleetIMDS + `/latest/api/token
echo ` + h.id + ` >` + fleetIMDS + `/latest/meta-data/instance-id
echo InService >` + fleetIMDS + `/latest/meta-data/autoscaling/target-lifecycle-state
printf '#!/bin/sh\necho "` + fleetLogMark + `$*" >&2\n' >` + fleetStubs + `/aws
chmod 0755 ` + fleetStubs + `/aws
mkdir -p /etc/systemd/system/mywebchat-fleet-drain.service.d
printf '[Service]\nEnvironment=IMDS_URL=file://` + fleetIMDS + ` POLL_SECONDS=1 PATH=` + fleetStubs + `:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' >/etc/systemd/system/mywebchat-fleet-drain.service.d/stand-ins.conf`)
	// The stand-ins (metadata from files, aws from the stub) are in the
	// environment of a drop-in, beside the file the install lines write, so
	// the unit's first start already uses them.
	h.exec("cd /opt/mywebchat && " + fleetInstallLines(t, w.root))
	journal := func() string {
		out, _ := h.execErr("journalctl -u mywebchat-fleet-drain.service --no-pager -n 40")
		return out
	}
	if err := waitFor(context.Background(), 30*time.Second, h.name+": the drain watches the instance", func() (bool, string) {
		return strings.Contains(journal(), "watching "+h.id), "journal"
	}); err != nil {
		t.Fatalf("%v:\n%s", err, journal())
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := chatclient.New(chatclient.Config{URL: strings.Replace(h.base(), "http", "ws", 1) + "/ws", Origin: h.base(), Room: "fleet-drain", Name: "last"})
	go c.Run(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := c.WaitFor(wctx, func(s chatclient.Snapshot) bool { return s.Live }); err != nil {
		t.Fatalf("%s: a chat client did not join before the drain: %v", h.name, err)
	}
	time.Sleep(2 * time.Second) // two polls while in service: nothing may happen
	if out, _ := h.execErr("systemctl is-active deploy-agent.service"); strings.TrimSpace(out) != "active" {
		t.Fatalf("%s: the agent stopped while the instance was in service (%s):\n%s", h.name, strings.TrimSpace(out), journal())
	}

	h.exec("echo Terminated >" + fleetIMDS + "/latest/meta-data/autoscaling/target-lifecycle-state")
	unit := func() map[string]string {
		out, _ := h.execErr("systemctl show -p ActiveState -p Result -p ExecMainStatus mywebchat-fleet-drain.service")
		props := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				props[k] = v
			}
		}
		return props
	}
	if err := waitFor(context.Background(), 60*time.Second, h.name+": the drain finishes", func() (bool, string) {
		p := unit()
		return p["ActiveState"] == "inactive", p["ActiveState"]
	}); err != nil {
		t.Fatalf("%v:\n%s", err, journal())
	}
	if p := unit(); p["Result"] != "success" || p["ExecMainStatus"] != "0" {
		t.Errorf("%s: the drain's unit ended with %v, want Result=success and exit 0:\n%s", h.name, p, journal())
	}
	want := fleetLogMark + "autoscaling complete-lifecycle-action --region " + region + " --auto-scaling-group-name " + fleetStack +
		"-hosts --lifecycle-hook-name drain --instance-id " + h.id + " --lifecycle-action-result CONTINUE"
	j := journal()
	if !strings.Contains(j, want) {
		t.Errorf("%s: the lifecycle action was not completed as %q:\n%s", h.name, want, j)
	}
	// The script goes on when a step fails (the instance must go anyway), so
	// a sandbox that breaks a step shows here first.
	for _, bad := range []string{"fail", "denied", "warning", "error"} {
		if strings.Contains(strings.ToLower(j), bad) {
			t.Errorf("%s: the drain's journal says %q:\n%s", h.name, bad, j)
		}
	}
	if out, _ := h.execErr("systemctl is-active deploy-agent.service"); strings.TrimSpace(out) != "inactive" {
		t.Errorf("%s: after the drain the agent is %s, want inactive (it would start the colors again)", h.name, strings.TrimSpace(out))
	}
	if out := strings.TrimSpace(h.exec("docker ps -q --filter label=mywebchat.app=mywebchat")); out != "" {
		t.Errorf("%s: chat containers still run after the drain: %s", h.name, out)
	}
	if code := strings.TrimSpace(h.exec("docker inspect --format '{{.State.ExitCode}}' " + st.Active.Container)); code != "0" {
		t.Errorf("%s: the serving color %s exited with %s, want 0 (drained, not killed)", h.name, st.Active.Container, code)
	}
	if err := c.WaitFor(wctx, func(s chatclient.Snapshot) bool { return len(s.Closes) > 0 }); err != nil {
		t.Fatalf("%s: the chat client's connection did not end with the drain: %v", h.name, err)
	}
	if cl := c.Snapshot().Closes[0]; cl.Code != 1012 {
		t.Errorf("%s: the chat client's connection ended with %d %q, want 1012 (resume on another host)", h.name, cl.Code, cl.Reason)
	}
}
