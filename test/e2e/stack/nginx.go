package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Nginx is the front proxy of one scenario: the image from Dockerfile.nginx
// run with host network, listening on Port of 127.0.0.1 only, including the
// upstream file in UpstreamDir (mounted read-only both at the path the site
// config includes and at its own host path, so a config test that names the
// host path works inside the container too).
type Nginx struct {
	Name        string // container name
	Image       string
	Port        int
	UpstreamDir string // host folder holding upstream.conf
	// SocketDir is the host folder holding the colors' unix sockets (the
	// agent's <state_dir>/sockets), mounted read-only at its own path as the
	// host's nginx unit does; empty: none.
	SocketDir string
	// ListenFrom is a listen file to take the site's server settings from,
	// e.g. nginx-templates/listen-behind-lb.conf; its listen directives give
	// way to Port on 127.0.0.1. Empty: just the listen directive.
	ListenFrom string
}

// UpstreamFile is the file the site config includes.
func (n *Nginx) UpstreamFile() string { return filepath.Join(n.UpstreamDir, "upstream.conf") }

// HostDir is the host folder mounted over the site's operator include
// folder (/etc/nginx/mywebchat/host), where a fault scenario can drop a
// broken server block.
func (n *Nginx) HostDir() string { return filepath.Join(filepath.Dir(n.UpstreamDir), "host") }

// URL is the base address of the site.
func (n *Nginx) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", n.Port) }

// ReloadCommand is the shell command that reloads this nginx (what a shell
// script would run): SIGHUP to the master process.
func (n *Nginx) ReloadCommand() string { return "docker kill -s HUP " + n.Name }

// Start writes the listen file and, when missing, a placeholder upstream, then
// starts the container and waits until nginx answers.
func (n *Nginx) Start(ctx context.Context) error {
	if err := os.MkdirAll(n.HostDir(), 0o755); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if err := os.MkdirAll(n.UpstreamDir, 0o755); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	listen := filepath.Join(filepath.Dir(n.UpstreamDir), n.Name+"-listen.conf")
	conf := fmt.Sprintf("listen 127.0.0.1:%d default_server;\n", n.Port)
	if n.ListenFrom != "" {
		b, err := os.ReadFile(n.ListenFrom)
		if err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(line), "listen ") {
				conf += line + "\n"
			}
		}
	}
	if err := os.WriteFile(listen, []byte(conf), 0o644); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	if _, err := os.Stat(n.UpstreamFile()); os.IsNotExist(err) {
		// A server nobody listens on: nginx starts and answers 502 until
		// the first deploy, as on a fresh host.
		if err := os.WriteFile(n.UpstreamFile(), []byte("upstream chat {\n    server 127.0.0.1:9 down;\n}\n"), 0o644); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
	}
	RemoveContainers(n.Name)
	args := []string{"run", "-d", "--name", n.Name, "--network", "host",
		"--read-only", "--tmpfs", "/tmp", "--tmpfs", "/run",
		"--label", "mywebchat.e2e=nginx",
		"-v", listen + ":/etc/nginx/mywebchat/listen.conf:ro",
		"-v", n.UpstreamDir + ":/var/lib/deploy-agent/nginx:ro",
		"-v", n.UpstreamDir + ":" + n.UpstreamDir + ":ro",
		"-v", n.HostDir() + ":/etc/nginx/mywebchat/host:ro"}
	if n.SocketDir != "" {
		// Created before the agent runs, so the mount is this folder and
		// not one the engine would make.
		if err := os.MkdirAll(n.SocketDir, 0o711); err != nil {
			return fmt.Errorf("nginx: %w", err)
		}
		args = append(args, "-v", n.SocketDir+":"+n.SocketDir+":ro")
	}
	if _, err := Docker(ctx, append(args, n.Image)...); err != nil {
		return fmt.Errorf("nginx: %w", err)
	}
	return WaitReady(ctx, fmt.Sprintf("nginx %s on port %d", n.Name, n.Port), n.Name, 20*time.Second, func(ctx context.Context) error {
		_, _, err := Get(ctx, n.URL()+"/")
		return err
	})
}

// Stop removes the container.
func (n *Nginx) Stop() { RemoveContainers(n.Name) }
