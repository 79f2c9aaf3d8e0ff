package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// commandTimeout bounds nginx -t and reload commands: they take milliseconds, a hang is a fault.
const commandTimeout = 30 * time.Second

// maxOutput bounds the command output quoted in errors.
const maxOutput = 2000

// HostCommand returns a function that runs argv on the host and fails with its output.
func HostCommand(argv []string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if len(argv) == 0 {
			return errors.New("no command configured")
		}
		ctx, cancel := context.WithTimeout(ctx, commandTimeout)
		defer cancel()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(out.String()))
		}
		return nil
	}
}

// ContainerRuntime is what container mode needs from the engine.
type ContainerRuntime interface {
	// Exec runs cmd in the container and returns its exit code and combined output.
	Exec(ctx context.Context, container string, cmd []string) (int, string, error)
	// Signal sends sig (e.g. "HUP") to the container's main process.
	Signal(ctx context.Context, container, sig string) error
}

// ContainerTest returns a function that runs `nginx -t` inside the nginx container.
func ContainerTest(rt ContainerRuntime, container string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, commandTimeout)
		defer cancel()
		code, out, err := rt.Exec(ctx, container, []string{"nginx", "-t"})
		if err != nil {
			return fmt.Errorf("nginx -t in container %s: %w", container, err)
		}
		if code != 0 {
			return fmt.Errorf("nginx -t in container %s exited %d: %s", container, code, tail(out))
		}
		return nil
	}
}

// ContainerReload returns a function that sends SIGHUP to the nginx container.
func ContainerReload(rt ContainerRuntime, container string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := rt.Signal(ctx, container, "HUP"); err != nil {
			return fmt.Errorf("SIGHUP to container %s: %w", container, err)
		}
		return nil
	}
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxOutput {
		s = "…" + s[len(s)-maxOutput:]
	}
	return s
}
