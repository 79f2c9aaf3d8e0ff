package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

func runHistory(_ context.Context, env Env, args []string) int {
	fs, configPath := newFlags(env, "history")
	asJSON := fs.Bool("json", false, "print a JSON array of deploy records")
	n := fs.Int("n", 20, "how many records, newest first (0: all)")
	if err := parse(fs, env, args); err != nil {
		return exitcode.BadInput
	}
	cfg, err := config.Load(*configPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "deploy-agent history:", err)
		return exitcode.BadInput
	}
	recs, err := state.Store{Dir: cfg.StateDir}.History(*n)
	if err != nil {
		fmt.Fprintln(env.Stderr, "deploy-agent history:", err)
		return exitcode.Failed
	}
	if *asJSON {
		b, _ := json.MarshalIndent(recs, "", "  ")
		fmt.Fprintln(env.Stdout, string(b))
		return exitcode.OK
	}
	for _, r := range recs {
		fmt.Fprintf(env.Stdout, "%s %s %-11s %s → %s (%s) in %s: %s\n", r.Started.Format(time.RFC3339), r.ID, r.Result, r.Image, r.Color,
			r.Digest, r.Finished.Sub(r.Started).Round(time.Millisecond), firstLine(r.Reason))
		for _, s := range r.Steps {
			fmt.Fprintf(env.Stdout, "    %-9s %6d ms  %s\n", s.Name, s.MS, s.Detail)
		}
	}
	return exitcode.OK
}
