package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/queue"
)

// syncBuffer is a bytes.Buffer safe for the daemon's goroutines to log into.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeConfig(t *testing.T, path, stateDir, extra string) {
	t.Helper()
	cfg := fmt.Sprintf(`state_dir: %s
app:
  repository: example.com/team/chat
proxy:
  mode: host
  test_command: ["true"]
  reload_command: ["true"]
  output: %s/nginx/upstream.conf
%s`, stateDir, stateDir, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRunServesQueueReloadsAndShutsDown runs the daemon without a reachable engine: it must still
// write the placeholder upstream, reject a garbage request with a result, keep its config when a
// new one is invalid, refuse a second daemon, and return nil when its context ends.
func TestRunServesQueueReloadsAndShutsDown(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no-docker.sock"))
	// systemd's notify socket: the daemon must send READY=1, WATCHDOG=1 and STOPPING=1.
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	notes := &syncBuffer{}
	go func() {
		buf := make([]byte, 256)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			notes.Write(append(buf[:n:n], '\n'))
		}
	}()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	cfgPath := filepath.Join(dir, "agent.yaml")
	writeConfig(t, cfgPath, stateDir, "")
	q := queue.Queue{StateDir: stateDir}
	if err := q.Init(); err != nil {
		t.Fatal(err)
	}
	garbage := queue.NewID(time.Now())
	if err := os.WriteFile(filepath.Join(q.QueueDir(), garbage+".json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}

	logs := &syncBuffer{}
	dm := &Daemon{ConfigPath: cfgPath, Log: slog.New(slog.NewJSONHandler(logs, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- dm.Run(ctx) }()

	waitFor(t, "the garbage request's result", func() bool {
		r, err := q.ReadResult(garbage)
		return err == nil && r.Exit == 2 && r.Result == "rejected"
	})
	waitFor(t, "the garbage request file to go", func() bool { return !q.Has(garbage) })
	upstream, err := os.ReadFile(filepath.Join(stateDir, "nginx", "upstream.conf"))
	if err != nil || !bytes.Contains(upstream, []byte("upstream chat")) {
		t.Errorf("placeholder upstream = %q, %v", upstream, err)
	}
	if !q.AgentRunning() {
		t.Error("agent lock not held while running")
	}
	second := &Daemon{ConfigPath: cfgPath, Log: slog.New(slog.DiscardHandler)}
	if err := second.Run(ctx); !errors.Is(err, queue.ErrLocked) {
		t.Errorf("second daemon Run = %v, want ErrLocked", err)
	}

	// A file dropped in later is picked up through fsnotify (or the rescan).
	late := queue.NewID(time.Now())
	os.WriteFile(filepath.Join(q.QueueDir(), late+".json"), bytes.Repeat([]byte("x"), queue.MaxRequestBytes+1), 0o600)
	waitFor(t, "the oversized request's result", func() bool {
		r, err := q.ReadResult(late)
		return err == nil && strings.Contains(r.Message, "larger than")
	})

	if err := os.WriteFile(cfgPath, []byte("state_dir: /x\nbogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the invalid config to be rejected", func() bool {
		return strings.Contains(logs.String(), "config change rejected") && strings.Contains(logs.String(), "unknown key bogus")
	})
	writeConfig(t, cfgPath, stateDir, "  check_url: http://127.0.0.1:9/healthz\n")
	waitFor(t, "the valid config to be applied", func() bool {
		return strings.Contains(logs.String(), "config and template reloaded")
	})

	waitFor(t, "READY=1 and WATCHDOG=1 on the notify socket", func() bool {
		return strings.Contains(notes.String(), "READY=1") && strings.Contains(notes.String(), "WATCHDOG=1")
	})

	// SIGHUP reloads too (systemctl reload deploy-agent).
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the SIGHUP reload", func() bool {
		return strings.Contains(logs.String(), "SIGHUP: reloading")
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if q.AgentRunning() {
		t.Error("agent lock still held after Run returned")
	}
	waitFor(t, "STOPPING=1", func() bool { return strings.Contains(notes.String(), "STOPPING=1") })
}

func TestRunInvalidConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(p, []byte("app: {repository: x/y}\nproxy: {mode: nope}\n"), 0o600)
	err := (&Daemon{ConfigPath: p, Log: slog.New(slog.DiscardHandler)}).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "proxy.mode") {
		t.Errorf("Run with invalid config = %v", err)
	}
}
