//go:build integration

package rehearsal

import (
	"context"
	"strings"
	"testing"
	"time"
)

// sandboxes checks, on a host that has deployed, that the units run inside
// the sandboxes their files describe and still do their work there:
//   - the agent has no capabilities and its own user namespace, and the
//     folders the colors bind belong to the image's user all the same (the
//     engine gave them);
//   - `systemctl reload mywebchat-nginx` (the certificate renewal hook's
//     call) signals nginx, which keeps serving from the same container;
//   - mywebchat-redis.service starts Redis, which answers inside its
//     container, restarts it, and stops it (the container is removed).
func (w *world) sandboxes(t *testing.T) {
	h := w.hosts[0]
	pid := strings.TrimSpace(h.exec("systemctl show -p MainPID --value deploy-agent.service"))
	if c := strings.TrimSpace(h.exec("sed -n 's/^CapBnd:[[:space:]]*//p' /proc/" + pid + "/status")); c != "0000000000000000" {
		t.Errorf("%s: the agent's capability bounding set is %s, want none", h.name, c)
	}
	if own, init := h.exec("readlink /proc/"+pid+"/ns/user"), h.exec("readlink /proc/1/ns/user"); own == init {
		t.Errorf("%s: the agent runs in the host's user namespace (%s), want its own", h.name, strings.TrimSpace(own))
	}
	color := strings.TrimSpace(h.exec("docker ps --filter label=mywebchat.app=mywebchat --format '{{.Names}}' | head -n 1"))
	user := strings.TrimSpace(h.exec("docker inspect --format '{{.Config.User}}' " + color))
	if !strings.Contains(user, ":") {
		user += ":" + user
	}
	for _, dir := range []string{"/var/lib/deploy-agent/handover/mywebchat", "/var/lib/deploy-agent/sockets/mywebchat"} {
		if got := strings.TrimSpace(h.exec("stat -c %u:%g " + dir)); got != user {
			t.Errorf("%s: %s belongs to %s, want the image's user %s", h.name, dir, got, user)
		}
	}

	before := h.nginxContainer()
	h.exec("systemctl reload mywebchat-nginx.service")
	if now := h.nginxContainer(); now != before {
		t.Errorf("%s: a reload replaced nginx: %q, then %q", h.name, before, now)
	}
	if body := get(t, h.base()+"/healthz"); !strings.Contains(body, `"status"`) {
		t.Errorf("%s: /healthz after the reload: %s", h.name, body)
	}

	w.hosts[0].load("mywebchat/redis:local")
	h.exec(`printf 'REDIS_IMAGE=mywebchat/redis:local\nREDIS_USER=redis\n' >/etc/mywebchat/redis.env`)
	defer h.execErr("systemctl stop mywebchat-redis.service; rm -f /etc/mywebchat/redis.env")
	pong := func(what string) {
		t.Helper()
		if err := waitFor(context.Background(), 30*time.Second, h.name+": Redis answers after "+what, func() (bool, string) {
			out, err := h.execErr("docker exec mywebchat-redis redis-cli ping")
			return err == nil && strings.TrimSpace(out) == "PONG", strings.TrimSpace(out)
		}); err != nil {
			t.Fatalf("%v; journal:\n%s", err, h.exec("journalctl -u mywebchat-redis.service --no-pager -n 30"))
		}
	}
	h.exec("systemctl start mywebchat-redis.service")
	pong("systemctl start")
	first := h.exec("docker container inspect --format '{{.Id}}' mywebchat-redis")
	h.exec("systemctl restart mywebchat-redis.service")
	pong("systemctl restart")
	if again := h.exec("docker container inspect --format '{{.Id}}' mywebchat-redis"); again == first {
		t.Errorf("%s: systemctl restart left the same Redis container", h.name)
	}
	h.exec("systemctl stop mywebchat-redis.service")
	if out, err := h.execErr("docker container inspect mywebchat-redis"); err == nil {
		t.Errorf("%s: after systemctl stop the Redis container is still there:\n%.300s", h.name, out)
	}
}
