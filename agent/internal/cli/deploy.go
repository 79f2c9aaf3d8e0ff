package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/deploy"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
	"github.com/mywebchat/mywebchat/agent/internal/queue"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// agentGone is how long --wait tolerates a stopped agent (systemd restarts it) before exit 4.
const agentGone = 15 * time.Second

func runDeploy(ctx context.Context, env Env, args []string) int {
	fs, configPath := newFlags(env, "deploy")
	image := fs.String("image", "", "image reference in app.repository, by tag or digest (required)")
	wait := fs.Bool("wait", true, "follow the deploy and exit with its result")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long --wait waits")
	if err := parse(fs, env, args); err != nil {
		return exitcode.BadInput
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "deploy-agent deploy: unexpected argument %q\n", fs.Arg(0))
		return exitcode.BadInput
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "deploy-agent deploy:", err)
		return exitcode.BadInput
	}
	if err := deploy.ValidateImage(*image, cfg.App.Repository); err != nil {
		fmt.Fprintln(env.Stderr, "deploy-agent deploy:", err, "(nothing changed)")
		return exitcode.BadInput
	}
	return submit(ctx, env, cfg, queue.Request{Kind: state.KindDeploy, Image: *image}, *wait, *timeout)
}

func runRollback(ctx context.Context, env Env, args []string) int {
	fs, configPath := newFlags(env, "rollback")
	wait := fs.Bool("wait", true, "follow the rollback and exit with its result")
	timeout := fs.Duration("timeout", 10*time.Minute, "how long --wait waits")
	if err := parse(fs, env, args); err != nil {
		return exitcode.BadInput
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "deploy-agent rollback:", err)
		return exitcode.BadInput
	}
	st, err := state.Store{Dir: cfg.StateDir}.Load()
	if err == nil && st.Previous == nil {
		fmt.Fprintln(env.Stderr, "deploy-agent rollback: there is no previous release to roll back to (nothing changed)")
		return exitcode.BadInput
	}
	return submit(ctx, env, cfg, queue.Request{Kind: state.KindRollback}, *wait, *timeout)
}

// submit queues req and, with wait, follows it to its result.
func submit(ctx context.Context, env Env, cfg config.Config, req queue.Request, wait bool, timeout time.Duration) int {
	q := queue.Queue{StateDir: cfg.StateDir}
	if err := unix.Access(cfg.StateDir, unix.W_OK|unix.X_OK); err != nil && !errors.Is(err, unix.ENOENT) {
		fmt.Fprintf(env.Stderr, "deploy-agent: cannot write to the state dir %s (run as root): %v\n", cfg.StateDir, err)
		return exitcode.BadInput
	}
	if !q.AgentRunning() {
		return notRunning(env)
	}
	store := state.Store{Dir: cfg.StateDir}
	req.ID = queue.NewID(time.Now())
	req.Requested = time.Now().UTC()
	err := q.Enqueue(req, func() error {
		p, err := store.LoadProgress()
		if err != nil {
			return err
		}
		if p != nil {
			return fmt.Errorf("%w: %s %s (id %s) is at step %s since %s", queue.ErrBusy, kindOf(p.Kind), p.Image, p.ID, p.Step, p.Started.Format(time.RFC3339))
		}
		return nil
	})
	switch {
	case errors.Is(err, queue.ErrBusy), errors.Is(err, queue.ErrFull):
		fmt.Fprintln(env.Stderr, "deploy-agent:", err, "; try again when it has finished (deploy-agent status)")
		return exitcode.Busy
	case errors.Is(err, fs.ErrPermission):
		fmt.Fprintf(env.Stderr, "deploy-agent: cannot write the queue in %s (run as root): %v\n", cfg.StateDir, err)
		return exitcode.BadInput
	case err != nil:
		fmt.Fprintln(env.Stderr, "deploy-agent:", err)
		return exitcode.BadInput
	}
	what := req.Image
	if req.Kind == state.KindRollback {
		what = "the previous release"
	}
	fmt.Fprintf(env.Stdout, "queued %s %s as %s\n", req.Kind, what, req.ID)
	if !wait {
		return exitcode.OK
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var downSince time.Time
	res, err := q.Follow(wctx, req.ID, func(ev queue.Event) {
		line := fmt.Sprintf("%7.3fs %-8s %-7s %s", ev.At.Sub(start).Seconds(), ev.Step, ev.Status, firstLine(ev.Detail))
		fmt.Fprintln(env.Stdout, strings.TrimRight(line, " "))
	}, func() error {
		if q.AgentRunning() {
			downSince = time.Time{}
			return nil
		}
		if downSince.IsZero() {
			downSince = time.Now()
		}
		if time.Since(downSince) > agentGone {
			return errors.New("the agent stopped while the request was in flight; when it starts again it finishes or undoes it (see deploy-agent status and history)")
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(env.Stderr, "deploy-agent: timed out after %s waiting for %s; it continues in the agent (deploy-agent status)\n", timeout, req.ID)
		} else {
			fmt.Fprintln(env.Stderr, "deploy-agent:", err)
		}
		return exitcode.NoAgent
	}
	if res.Exit == exitcode.OK {
		fmt.Fprintf(env.Stdout, "%s: %s\n", res.Result, res.Message)
	} else {
		fmt.Fprintf(env.Stderr, "%s: %s\n", res.Result, res.Message)
	}
	return res.Exit
}

func kindOf(k string) string {
	if k == "" {
		return state.KindDeploy
	}
	return k
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
