package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// cancelPoll is how often the runner looks for a cancel request; a cancel
// lands within this much of cancel-command.
const cancelPoll = 100 * time.Millisecond

// killedExitCode is the response code the SSM agent reports for a script it
// stopped (128 + SIGKILL).
const killedExitCode = 137

var (
	errCancelled        = errors.New("cancelled")
	errExecutionTimeout = errors.New("execution timed out")
)

type result struct {
	instance string
	status   string
	details  string
}

// runCommand is the detached runner: it sends one command to its targets
// under rate control and the error threshold, and records every status.
// It is the only writer of the command's files after send-command.
func runCommand(ctx context.Context, s *store, id string) error {
	rec, err := s.command(id)
	if err != nil {
		return err
	}
	cmd := &rec.Command
	n := len(rec.Resolved)
	conc := resolveCount(cmd.MaxConcurrency, n, true)
	maxErr := resolveCount(cmd.MaxErrors, n, false)
	deliveryDeadline := rec.Requested.Add(time.Duration(cmd.TimeoutSeconds) * time.Second)
	save := func() error { return writeJSON(filepath.Join(s.commandDir(id), "command.json"), rec) }

	cancelled := make(chan struct{})
	go func() {
		t := time.NewTicker(cancelPoll)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := os.Stat(filepath.Join(s.commandDir(id), "cancel")); err == nil {
					close(cancelled)
					return
				}
			}
		}
	}()

	if n > 0 {
		cmd.Status, cmd.StatusDetails = "InProgress", "InProgress"
		if err := save(); err != nil {
			return err
		}
	}
	results := make(chan result)
	running := map[string]context.CancelCauseFunc{}
	next, errCount, dto := 0, 0, 0
	stopped, isCancelled := false, false
	deadline := time.NewTimer(time.Until(deliveryDeadline))
	defer deadline.Stop()
	pastDeadline := false

	finishUnsent := func(status, details string) error {
		for ; next < n; next++ {
			inv, err := s.invocation(id, rec.Resolved[next])
			if err != nil {
				return err
			}
			inv.Status, inv.StatusDetails = status, details
			if err := s.saveInvocation(inv); err != nil {
				return err
			}
			cmd.CompletedCount++
			if details == "DeliveryTimedOut" {
				dto++
				cmd.DeliveryTimedOutCount++
			}
		}
		return save()
	}

	for next < n || len(running) > 0 {
		if next < n {
			switch {
			case isCancelled:
				if err := finishUnsent("Cancelled", "Cancelled"); err != nil {
					return err
				}
				continue
			case stopped:
				if err := finishUnsent("Cancelled", "Terminated"); err != nil {
					return err
				}
				continue
			case pastDeadline || !time.Now().Before(deliveryDeadline):
				pastDeadline = true
				if err := finishUnsent("TimedOut", "DeliveryTimedOut"); err != nil {
					return err
				}
				continue
			case len(running) < conc:
				iid := rec.Resolved[next]
				next++
				ictx, cancel := context.WithCancelCause(context.Background())
				running[iid] = cancel
				go func() { results <- s.invoke(ictx, rec, iid) }()
				continue
			}
		}
		var deadlineC <-chan time.Time
		if next < n {
			deadlineC = deadline.C
		}
		var cancelC <-chan struct{}
		if !isCancelled {
			cancelC = cancelled
		}
		select {
		case r := <-results:
			running[r.instance](nil)
			delete(running, r.instance)
			cmd.CompletedCount++
			switch r.details {
			case "Failed", "ExecutionTimedOut":
				errCount++
				cmd.ErrorCount++
			case "DeliveryTimedOut":
				dto++
				cmd.DeliveryTimedOutCount++
			}
			if errCount > maxErr {
				stopped = true
			}
			if err := save(); err != nil {
				return err
			}
		case <-cancelC:
			isCancelled = true
			cmd.Status, cmd.StatusDetails = "Cancelling", "Cancelling"
			if err := save(); err != nil {
				return err
			}
			for _, cancel := range running {
				cancel(errCancelled)
			}
		case <-deadlineC:
			pastDeadline = true
		case <-ctx.Done():
			for _, cancel := range running {
				cancel(errCancelled)
			}
			return ctx.Err()
		}
	}

	switch {
	case isCancelled:
		cmd.Status, cmd.StatusDetails = "Cancelled", "Cancelled"
	case errCount > maxErr:
		cmd.Status, cmd.StatusDetails = "Failed", "Failed"
	case dto > maxErr:
		cmd.Status, cmd.StatusDetails = "TimedOut", "DeliveryTimedOut"
	default:
		cmd.Status, cmd.StatusDetails = "Success", "Success"
		for _, iid := range rec.Resolved {
			inv, err := s.invocation(id, iid)
			if err != nil {
				return err
			}
			if inv.Status != "Success" {
				cmd.Status, cmd.StatusDetails = "Failed", "Incomplete"
				break
			}
		}
	}
	return save()
}

// invoke delivers the command to one instance and runs it.
func (s *store) invoke(ctx context.Context, rec *commandRecord, iid string) result {
	id := rec.Command.CommandId
	inv, err := s.invocation(id, iid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "invocation %s: %v\n", iid, err)
		return result{iid, "Failed", "Undeliverable"}
	}
	finish := func(status, details string, code int) result {
		inv.Status, inv.StatusDetails, inv.ResponseCode = status, details, code
		if inv.ExecutionStartDateTime != "" {
			inv.ExecutionEndDateTime = awsTime(time.Now())
		}
		if err := s.saveInvocation(inv); err != nil {
			fmt.Fprintf(os.Stderr, "invocation %s: %v\n", iid, err)
		}
		return result{iid, status, details}
	}
	in, err := s.instance(iid)
	if err != nil || !in.Managed || pingStatus(ctx, in) != "Online" {
		if context.Cause(ctx) == errCancelled {
			return finish("Cancelled", "Cancelled", -1)
		}
		return finish("Failed", "Undeliverable", -1)
	}
	inv.Status, inv.StatusDetails = "InProgress", "InProgress"
	inv.ExecutionStartDateTime = awsTime(time.Now())
	if err := s.saveInvocation(inv); err != nil {
		fmt.Fprintf(os.Stderr, "invocation %s: %v\n", iid, err)
	}
	base := filepath.Join(s.commandDir(id), "invocations", iid)
	stdout, err1 := os.Create(base + ".stdout")
	stderr, err2 := os.Create(base + ".stderr")
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintf(os.Stderr, "invocation %s: %v\n", iid, err)
		return finish("Failed", "Failed", -1)
	}
	defer stdout.Close()
	defer stderr.Close()
	env := map[string]string{"FAKESSM_INSTANCE_ID": iid, "FAKESSM_COMMAND_ID": id}
	for k, v := range rec.Rendered.Params {
		env["FAKESSM_PARAM_"+k] = v
	}
	tctx, cancel := context.WithTimeoutCause(ctx, time.Duration(rec.Rendered.ExecutionTimeout)*time.Second, errExecutionTimeout)
	defer cancel()
	j := job{CommandID: id, InstanceID: iid, Step: rec.Rendered.Step, Script: rec.Rendered.Script, Env: env}
	code, err := hostFor(in).run(tctx, j, stdout, stderr)
	switch {
	case err == nil && code == 0:
		return finish("Success", "Success", 0)
	case err == nil:
		return finish("Failed", "Failed", code)
	case context.Cause(tctx) == errCancelled:
		return finish("Cancelled", "Cancelled", killedExitCode)
	case context.Cause(tctx) == errExecutionTimeout:
		return finish("TimedOut", "ExecutionTimedOut", killedExitCode)
	default:
		fmt.Fprintf(stderr, "%v\n", err)
		return finish("Failed", "Failed", -1)
	}
}
