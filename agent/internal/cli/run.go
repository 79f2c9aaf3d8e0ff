package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/daemon"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
	"github.com/mywebchat/mywebchat/agent/internal/queue"
)

func runDaemon(ctx context.Context, env Env, args []string) int {
	fs, configPath := newFlags(env, "run")
	if err := parse(fs, env, args); err != nil {
		return exitcode.BadInput
	}
	log := newLogger(env).With("version", env.Version)
	dm := &daemon.Daemon{ConfigPath: *configPath, Log: log, CrashAt: env.Getenv("DEPLOY_AGENT_TEST_CRASH_AT"), HoldFile: env.Getenv("DEPLOY_AGENT_TEST_HOLD_FILE")}
	if dm.CrashAt != "" {
		log.Warn("crash test hook armed: the agent will SIGKILL itself at this step", "step", dm.CrashAt)
	}
	if dm.HoldFile != "" {
		log.Warn("hold test hook armed: a deploy waits at the step this file names while it exists", "file", dm.HoldFile)
	}
	if err := dm.Run(ctx); err != nil {
		log.Error("deploy agent stopped", "err", err)
		fmt.Fprintln(env.Stderr, "deploy-agent run:", err)
		if errors.Is(err, config.ErrInvalid) {
			return exitcode.BadInput
		}
		if errors.Is(err, queue.ErrLocked) {
			return exitcode.Busy
		}
		return exitcode.Failed
	}
	return exitcode.OK
}
