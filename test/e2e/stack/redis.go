package stack

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Redis is the single-host Redis of mywebchat-redis.service: a container on
// a user-defined network of its own with nothing published, which the chat
// containers join (app.network) and reach by the container's name.
type Redis struct {
	Name    string // container name, also its host name on Network
	Network string
	Image   string // REDIS_IMAGE: mywebchat/redis:local here, redis:7-alpine on a host
}

// URL is CHAT_REDIS_URL as the chat containers use it.
func (r *Redis) URL() string { return "redis://" + r.Name + ":6379/0" }

// Start creates the network and runs Redis on it with the unit's settings
// (append-only file fsynced on every write, no eviction), hardened the same
// way, with its data on a named volume of its own (as the unit's; a new
// volume takes the image's owner of /data), then waits until it answers PING.
func (r *Redis) Start(ctx context.Context) error {
	if _, err := Docker(ctx, "network", "create", "--label", "mywebchat.e2e=network", r.Network); err != nil {
		return fmt.Errorf("redis network: %w", err)
	}
	if _, err := Docker(ctx, "run", "-d", "--name", r.Name, "--network", r.Network,
		"--read-only", "--tmpfs", "/tmp", "-v", r.volume()+":/data",
		"--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--label", "mywebchat.e2e=redis",
		r.Image, "redis-server", "--dir", "/data", "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--maxmemory", "256mb", "--maxmemory-policy", "noeviction", "--protected-mode", "no"); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return r.waitPing(ctx)
}

// Restart stops Redis (SIGTERM, it writes and closes its append-only file)
// and starts it again on the same volume, then waits until it answers.
func (r *Redis) Restart(ctx context.Context) error {
	if _, err := Docker(ctx, "restart", "-t", "10", r.Name); err != nil {
		return fmt.Errorf("redis restart: %w", err)
	}
	return r.waitPing(ctx)
}

func (r *Redis) waitPing(ctx context.Context) error {
	return WaitReady(ctx, "redis "+r.Name, r.Name, 20*time.Second, func(ctx context.Context) error {
		out, err := Docker(ctx, "exec", r.Name, "redis-cli", "ping")
		if err == nil && strings.TrimSpace(out) != "PONG" {
			err = fmt.Errorf("PING answered %q", strings.TrimSpace(out))
		}
		return err
	})
}

func (r *Redis) volume() string { return r.Name + "-data" }

// Stop removes the container, its volume and the network (once nothing else is on it).
func (r *Redis) Stop() {
	RemoveContainers(r.Name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = Docker(ctx, "volume", "rm", r.volume())
	_, _ = Docker(ctx, "network", "rm", r.Network)
}

// RemoveNetworksWithPrefix removes the networks whose name starts with prefix
// (left behind when a run was interrupted).
func RemoveNetworksWithPrefix(ctx context.Context, prefix string) {
	out, err := Docker(ctx, "network", "ls", "--filter", "name=^"+prefix, "--format", "{{.Name}}")
	if err != nil {
		return
	}
	for _, n := range strings.Fields(out) {
		if strings.HasPrefix(n, prefix) {
			_, _ = Docker(ctx, "network", "rm", n)
		}
	}
}
