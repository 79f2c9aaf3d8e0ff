package cli

import (
	"context"
	"fmt"
)

func runVersion(_ context.Context, env Env, _ []string) int {
	fmt.Fprintln(env.Stdout, "deploy-agent", env.Version)
	return ExitOK
}
