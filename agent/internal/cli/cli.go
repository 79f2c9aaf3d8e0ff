// Package cli holds the deploy-agent subcommands, one file and one flag.FlagSet each. They parse
// flags, call into the other packages and map outcomes to the exit codes of package exitcode; the
// logic lives elsewhere.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
)

// Env is what a subcommand gets from main.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Version        string
}

type command struct {
	name, usage string
	run         func(ctx context.Context, env Env, args []string) int
}

var commands = []command{
	{"run", "daemon: reconcile, then serve requests from the queue", runDaemon},
	{"deploy", "queue a deploy: --image REF [--wait=true] [--timeout 10m]", runDeploy},
	{"rollback", "switch back to the previous release [--wait=true] [--timeout 10m]", runRollback},
	{"status", "active and previous release, deploy in progress [--json]", runStatus},
	{"history", "the deploy journal, newest first [--json] [-n N]", runHistory},
	{"validate", "parse the config, render and test the nginx config, check the engine", runValidate},
	{"version", "print the build version", runVersion},
}

// Main runs the subcommand named in args and returns the process exit code.
func Main(ctx context.Context, env Env, args []string) int {
	global := flag.NewFlagSet("deploy-agent", flag.ContinueOnError)
	global.SetOutput(env.Stderr)
	configPath := global.String("config", "", "config file (env DEPLOY_AGENT_CONFIG, default "+defaultConfig(env)+")")
	global.Usage = func() { usage(env.Stderr) }
	if err := global.Parse(args); err != nil {
		return exitcode.BadInput
	}
	rest := global.Args()
	if len(rest) == 0 {
		usage(env.Stderr)
		return exitcode.BadInput
	}
	if *configPath != "" {
		rest = append([]string{rest[0], "--config", *configPath}, rest[1:]...)
	}
	for _, c := range commands {
		if c.name == rest[0] {
			return c.run(ctx, env, rest[1:])
		}
	}
	if rest[0] == "help" || rest[0] == "-h" {
		usage(env.Stdout)
		return exitcode.OK
	}
	fmt.Fprintf(env.Stderr, "deploy-agent: unknown command %q\n", rest[0])
	usage(env.Stderr)
	return exitcode.BadInput
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: deploy-agent [--config PATH] COMMAND [flags]")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.usage)
	}
}

func defaultConfig(env Env) string {
	if p := env.Getenv("DEPLOY_AGENT_CONFIG"); p != "" {
		return p
	}
	return config.DefaultPath
}

// parse parses args, then fills every flag not given on the command line from its env fallback
// DEPLOY_AGENT_<NAME> (upper case, dashes as underscores). A malformed env value is an error.
func parse(fs *flag.FlagSet, env Env, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || f.Name == "config" || err != nil {
			return // --config's env fallback is its default already
		}
		name := "DEPLOY_AGENT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env.Getenv(name); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
				fmt.Fprintln(env.Stderr, "deploy-agent:", err)
			}
		}
	})
	return err
}

// newFlags returns a FlagSet with the shared --config flag.
func newFlags(env Env, name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("deploy-agent "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	return fs, fs.String("config", defaultConfig(env), "config file (env DEPLOY_AGENT_CONFIG)")
}

// newLogger writes JSON logs to stderr (journald under systemd), level from DEPLOY_AGENT_LOG_LEVEL.
func newLogger(env Env) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToLower(env.Getenv("DEPLOY_AGENT_LOG_LEVEL")) {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}

// notRunning is the exit-4 message with how to start the agent.
func notRunning(env Env) int {
	fmt.Fprintln(env.Stderr, "deploy-agent: the agent is not running; start it with `systemctl start deploy-agent` (or `deploy-agent run` in a shell)")
	return exitcode.NoAgent
}
