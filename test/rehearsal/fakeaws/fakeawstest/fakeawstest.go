// Package fakeawstest builds the fake aws CLI for tests and cleans up after
// it. The tests of the fake itself, the rollout step's tests and the
// rehearsal all drive the same executable, one short process per call.
package fakeawstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Package is the fake CLI's import path, so it builds from any directory.
const Package = "github.com/mywebchat/mywebchat/test/rehearsal/fakeaws"

// Build compiles the fake CLI into dir/aws, statically (it also runs inside
// stand-in hosts, for install.sh's own calls), and returns its path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "aws")
	cmd := exec.Command("go", "build", "-o", bin, Package)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the fake aws CLI: %w\n%s", err, out)
	}
	return bin, nil
}

// TB is the part of testing.TB that StopCommands needs.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// StopCommands cancels whatever the fake still runs when a test ends (a
// failed test may leave a simulated deploy sleeping) and waits until every
// command is over, so no runner outlives the test's folders. call runs the
// fake CLI against the test's state and returns its standard output.
func StopCommands(t TB, call func(args ...string) (string, error)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := call("ssm", "list-commands", "--query",
			"Commands[?Status=='Pending'||Status=='InProgress'||Status=='Cancelling'].CommandId", "--output", "text")
		if err != nil || strings.TrimSpace(out) == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("commands still running after the test: %s", out)
			return
		}
		for _, id := range strings.Fields(out) {
			call("ssm", "cancel-command", "--command-id", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Main is a TestMain body: it builds the fake CLI into a temporary folder,
// sets *bin to its path, runs the tests and removes the folder.
func Main(m interface{ Run() int }, bin *string) {
	dir, err := os.MkdirTemp("", "fakeaws-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
