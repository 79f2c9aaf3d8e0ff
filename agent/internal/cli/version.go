package cli

import (
	"context"
	"fmt"

	"github.com/mywebchat/mywebchat/agent/internal/exitcode"
)

func runVersion(_ context.Context, env Env, _ []string) int {
	fmt.Fprintln(env.Stdout, "deploy-agent", env.Version)
	return exitcode.OK
}
