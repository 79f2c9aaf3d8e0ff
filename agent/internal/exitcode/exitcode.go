// Package exitcode names the deploy-agent's exit codes. They are a contract: SSM Run Command and
// CI read them, the daemon writes them into result.json, and `deploy --wait` exits with them, so
// they are defined here once and nowhere else.
package exitcode

const (
	// OK: deployed (or the command did what it was asked).
	OK = 0
	// Failed: the deploy failed and was undone or rolled back; the old release still serves.
	Failed = 1
	// BadInput: bad flags, config or image reference; nothing changed.
	BadInput = 2
	// Busy: another deploy is queued or running (the message names it), or another agent holds the lock.
	Busy = 3
	// NoAgent: the agent is not running, or `--wait` timed out (the deploy continues in the agent).
	NoAgent = 4
)
