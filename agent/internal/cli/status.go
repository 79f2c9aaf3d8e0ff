package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/daemon"
	"github.com/mywebchat/mywebchat/agent/internal/deploy"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
	"github.com/mywebchat/mywebchat/agent/internal/queue"
)

func runStatus(ctx context.Context, env Env, args []string) int {
	fs, configPath := newFlags(env, "status")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parse(fs, env, args); err != nil {
		return exitcode.BadInput
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "deploy-agent status:", err)
		return exitcode.BadInput
	}
	dc, err := docker.New()
	if err != nil {
		fmt.Fprintln(env.Stderr, "deploy-agent status:", err)
		return exitcode.Failed
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	st, err := daemon.NewStatusReader(&cfg, dc).Status(ctx)
	if err != nil {
		fmt.Fprintln(env.Stderr, "deploy-agent status:", err)
		return exitcode.Failed
	}
	if *asJSON {
		b, _ := json.Marshal(st)
		fmt.Fprintln(env.Stdout, string(b))
	} else {
		printRelease(env, "active", st.Active)
		printRelease(env, "previous", st.Previous)
		if st.Deploying != nil {
			fmt.Fprintf(env.Stdout, "deploying: %s (id %s) at step %s\n", st.Deploying.Image, st.Deploying.ID, st.Deploying.Step)
		} else {
			fmt.Fprintln(env.Stdout, "deploying: none")
		}
		served := st.Served
		if served == "" {
			served = "placeholder (no release)"
		}
		fmt.Fprintln(env.Stdout, "nginx serves:", served)
	}
	if !(queue.Queue{StateDir: cfg.StateDir}).AgentRunning() {
		return notRunning(env)
	}
	return exitcode.OK
}

func printRelease(env Env, label string, r *deploy.ReleaseStatus) {
	if r == nil {
		fmt.Fprintf(env.Stdout, "%s: none\n", label)
		return
	}
	health := "unhealthy"
	if r.Healthy {
		health = "healthy"
	}
	fmt.Fprintf(env.Stdout, "%s: %s %s (%s) port %d container %s %s, %s since %s\n",
		label, r.Color, r.Image, r.Digest, r.Port, r.Container, r.State, health, r.Since.Format(time.RFC3339))
}
