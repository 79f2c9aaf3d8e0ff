package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Output limits of the API (Run Command documentation).
const (
	maxOutputChars        = 24000 // get-command-invocation StandardOutputContent / StandardErrorContent
	maxDetailsOutputChars = 2500  // list-command-invocations --details, per plugin
	maxInstanceIDs        = 50    // send-command --instance-ids
)

// Command is the API's Command structure, as list-commands prints it.
type Command struct {
	CommandId             string
	DocumentName          string
	DocumentVersion       string
	Comment               string
	ExpiresAfter          string
	Parameters            map[string][]string
	InstanceIds           []string
	Targets               []Target
	RequestedDateTime     string
	Status                string
	StatusDetails         string
	MaxConcurrency        string
	MaxErrors             string
	TargetCount           int
	CompletedCount        int
	ErrorCount            int
	DeliveryTimedOutCount int
	TimeoutSeconds        int
}

// Target is one --targets entry.
type Target struct {
	Key    string
	Values []string
}

// commandRecord is command.json: the API view plus what the runner needs.
type commandRecord struct {
	Command   Command
	Resolved  []string // instance ids, in the order they are sent
	Rendered  rendered
	Requested time.Time
}

// Invocation is one instance's copy of a command.
type Invocation struct {
	CommandId              string
	InstanceId             string
	InstanceName           string
	Comment                string
	DocumentName           string
	DocumentVersion        string
	RequestedDateTime      string
	Status                 string
	StatusDetails          string
	ResponseCode           int
	ExecutionStartDateTime string
	ExecutionEndDateTime   string
	PluginName             string
}

func awsTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000-07:00")
}

func (s *store) commandDir(id string) string { return s.path("commands", id) }

func (s *store) command(id string) (*commandRecord, error) {
	if id == "" || strings.ContainsAny(id, "/\\.") {
		return nil, apiErr("InvalidCommandId", "command id %q is not valid", id)
	}
	var rec commandRecord
	err := readJSON(filepath.Join(s.commandDir(id), "command.json"), &rec)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, apiErr("InvalidCommandId", "")
	}
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

func (s *store) invocation(cmdID, instanceID string) (*Invocation, error) {
	var inv Invocation
	err := readJSON(filepath.Join(s.commandDir(cmdID), "invocations", instanceID+".json"), &inv)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, apiErr("InvocationDoesNotExist", "")
	}
	return &inv, err
}

func (s *store) saveInvocation(inv *Invocation) error {
	return writeJSON(filepath.Join(s.commandDir(inv.CommandId), "invocations", inv.InstanceId+".json"), inv)
}

func (s *store) output(cmdID, instanceID, stream string, limit int) string {
	b, err := os.ReadFile(filepath.Join(s.commandDir(cmdID), "invocations", instanceID+"."+stream))
	if err != nil {
		return ""
	}
	return truncateChars(string(b), limit)
}

// truncateChars keeps the first limit characters (code points), as the API
// counts them.
func truncateChars(s string, limit int) string {
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit {
			return s[:i]
		}
		n++
	}
	return s
}

var (
	concurrencyRe = regexp.MustCompile(`^([1-9][0-9]*|[1-9][0-9]?%|100%)$`)
	errorsRe      = regexp.MustCompile(`^([1-9][0-9]*|0|[0-9][0-9]?%|100%)$`)
)

// resolveCount turns a rate-control value into a number of targets: a
// percentage of n rounds up for concurrency (at least 1) and down for errors.
func resolveCount(v string, n int, up bool) int {
	if p, ok := strings.CutSuffix(v, "%"); ok {
		pct, _ := strconv.Atoi(p)
		c := n * pct / 100
		if up && n*pct%100 != 0 {
			c++
		}
		if up && c < 1 {
			c = 1
		}
		return c
	}
	c, _ := strconv.Atoi(v)
	return c
}

func newCommandID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func sendCommand(ctx context.Context, s *store, a *args) (any, error) {
	docName, err := a.required("document-name")
	if err != nil {
		return nil, err
	}
	if v, _ := a.str("document-version"); v != "" && v != "$DEFAULT" && v != "$LATEST" && v != "1" {
		return nil, apiErr("InvalidDocumentVersion", "the fake keeps one version of each document")
	}
	comment, err := a.str("comment")
	if err != nil {
		return nil, err
	}
	if len(comment) > 100 {
		return nil, apiErr("ValidationException", "1 validation error detected: Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100")
	}
	maxConc, err := a.str("max-concurrency")
	if err != nil {
		return nil, err
	}
	if maxConc == "" {
		maxConc = "50"
	}
	if !concurrencyRe.MatchString(maxConc) {
		return nil, apiErr("ValidationException", "Value '%s' at 'maxConcurrency' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([1-9][0-9]*|[1-9][0-9]%%|[1-9]%%|100%%)$", maxConc)
	}
	maxErr, err := a.str("max-errors")
	if err != nil {
		return nil, err
	}
	if maxErr == "" {
		maxErr = "0"
	}
	if !errorsRe.MatchString(maxErr) {
		return nil, apiErr("ValidationException", "Value '%s' at 'maxErrors' failed to satisfy constraint: Member must satisfy regular expression pattern: ^([1-9][0-9]*|[0]|[1-9][0-9]%%|[0-9]%%|100%%)$", maxErr)
	}
	timeout := 3600
	if v, err := a.str("timeout-seconds"); err != nil {
		return nil, err
	} else if v != "" {
		if timeout, err = strconv.Atoi(v); err != nil {
			return nil, usagef("argument --timeout-seconds: invalid int value: %q", v)
		}
		if timeout < 30 || timeout > 2592000 {
			return nil, apiErr("ValidationException", "Value '%d' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000", timeout)
		}
	}
	var params map[string][]string
	if p, err := a.str("parameters"); err != nil {
		return nil, err
	} else if p != "" {
		if params, err = parseShorthand(p); err != nil {
			return nil, err
		}
	}
	ids := a.list("instance-ids")
	targetWords := a.list("targets")
	if (len(ids) == 0) == (len(targetWords) == 0) {
		return nil, apiErr("ValidationException", "give either --instance-ids or --targets")
	}
	doc, err := s.document(docName)
	if err != nil {
		return nil, err
	}
	r, err := doc.render(ctx, docName, params)
	if err != nil {
		return nil, err
	}
	all, err := s.instances()
	if err != nil {
		return nil, err
	}
	var resolved []string
	var targets []Target
	if len(ids) > 0 {
		if len(ids) > maxInstanceIDs {
			return nil, apiErr("ValidationException", "--instance-ids takes at most %d instances, got %d", maxInstanceIDs, len(ids))
		}
		byID := map[string]*Instance{}
		for _, in := range all {
			byID[in.InstanceId] = in
		}
		var bad []string
		seen := map[string]bool{}
		for _, id := range ids {
			if in := byID[id]; in == nil || !in.Managed {
				bad = append(bad, id)
			} else if !seen[id] {
				seen[id] = true
				resolved = append(resolved, id)
			}
		}
		if len(bad) > 0 {
			return nil, apiErr("InvalidInstanceId", "Instances [[%s]] not in a valid state for account 000000000000", strings.Join(bad, ", "))
		}
	} else {
		structs, err := parseStructList(targetWords, "Values")
		if err != nil {
			return nil, err
		}
		for _, t := range structs {
			if len(t["Key"]) != 1 || len(t["Values"]) == 0 {
				return nil, usagef("--targets: want Key=tag:NAME,Values=V1[,V2], got %v", t)
			}
			targets = append(targets, Target{Key: t["Key"][0], Values: t["Values"]})
		}
		if len(targets) > 5 {
			return nil, apiErr("ValidationException", "at most 5 targets")
		}
		for _, in := range all {
			if in.Managed && matchesTargets(in, targets) {
				resolved = append(resolved, in.InstanceId)
			}
		}
	}
	id, err := newCommandID()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	cmd := Command{
		CommandId: id, DocumentName: docName, DocumentVersion: "$DEFAULT", Comment: comment,
		ExpiresAfter: awsTime(now.Add(time.Duration(timeout+r.ExecutionTimeout) * time.Second)),
		Parameters:   params, InstanceIds: ids, Targets: targets, RequestedDateTime: awsTime(now),
		Status: "Pending", StatusDetails: "Pending", MaxConcurrency: maxConc, MaxErrors: maxErr,
		TargetCount: len(resolved), TimeoutSeconds: timeout,
	}
	if cmd.InstanceIds == nil {
		cmd.InstanceIds = []string{}
	}
	if cmd.Targets == nil {
		cmd.Targets = []Target{}
	}
	if cmd.Parameters == nil {
		cmd.Parameters = map[string][]string{}
	}
	dir := s.commandDir(id)
	if err := os.MkdirAll(filepath.Join(dir, "invocations"), 0o755); err != nil {
		return nil, err
	}
	for _, iid := range resolved {
		inv := &Invocation{CommandId: id, InstanceId: iid, Comment: comment, DocumentName: docName,
			DocumentVersion: "$DEFAULT", RequestedDateTime: awsTime(now), Status: "Pending",
			StatusDetails: "Pending", ResponseCode: -1, PluginName: r.Step}
		if err := s.saveInvocation(inv); err != nil {
			return nil, err
		}
	}
	rec := &commandRecord{Command: cmd, Resolved: resolved, Rendered: *r, Requested: now}
	if err := writeJSON(filepath.Join(dir, "command.json"), rec); err != nil {
		return nil, err
	}
	if err := startRunner(s, id); err != nil {
		return nil, err
	}
	return map[string]any{"Command": cmd}, nil
}

func matchesTargets(in *Instance, targets []Target) bool {
	for _, t := range targets {
		switch {
		case strings.HasPrefix(t.Key, "tag:"):
			v, ok := in.Tags[strings.TrimPrefix(t.Key, "tag:")]
			if !ok || !contains(t.Values, v) {
				return false
			}
		case t.Key == "tag-key":
			found := false
			for _, k := range t.Values {
				if _, ok := in.Tags[k]; ok {
					found = true
				}
			}
			if !found {
				return false
			}
		case t.Key == "InstanceIds":
			if !contains(t.Values, in.InstanceId) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// startRunner starts the detached runner of a command: this binary, in its
// own session so it outlives the CLI call and the caller's process group.
func startRunner(s *store, id string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start runner: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(s.commandDir(id), "runner.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start runner: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, runnerArg, id)
	cmd.Env = append(os.Environ(), stateEnv+"="+s.dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start runner: %w", err)
	}
	return cmd.Process.Release()
}

func listCommands(ctx context.Context, s *store, a *args) (any, error) {
	id, err := a.str("command-id")
	if err != nil {
		return nil, err
	}
	instance, err := a.str("instance-id")
	if err != nil {
		return nil, err
	}
	var ids []string
	if id != "" {
		ids = []string{id}
	} else {
		entries, err := os.ReadDir(s.path("commands"))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			ids = append(ids, e.Name())
		}
	}
	cmds := []Command{}
	for _, cid := range ids {
		rec, err := s.command(cid)
		if err != nil {
			return nil, err
		}
		if instance != "" && !contains(rec.Resolved, instance) {
			continue
		}
		cmds = append(cmds, rec.Command)
	}
	sort.SliceStable(cmds, func(i, j int) bool { return cmds[i].RequestedDateTime > cmds[j].RequestedDateTime })
	return map[string]any{"Commands": cmds}, nil
}

func listCommandInvocations(ctx context.Context, s *store, a *args) (any, error) {
	id, err := a.required("command-id")
	if err != nil {
		return nil, err
	}
	instance, err := a.str("instance-id")
	if err != nil {
		return nil, err
	}
	details := a.flag("details")
	rec, err := s.command(id)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, iid := range rec.Resolved {
		if instance != "" && iid != instance {
			continue
		}
		inv, err := s.invocation(id, iid)
		if err != nil {
			return nil, err
		}
		m := map[string]any{
			"CommandId": inv.CommandId, "InstanceId": inv.InstanceId, "InstanceName": inv.InstanceName,
			"Comment": inv.Comment, "DocumentName": inv.DocumentName, "DocumentVersion": inv.DocumentVersion,
			"RequestedDateTime": inv.RequestedDateTime, "Status": inv.Status, "StatusDetails": inv.StatusDetails,
			"TraceOutput": "", "StandardOutputUrl": "", "StandardErrorUrl": "",
			"CommandPlugins": []any{}, "ServiceRole": "",
			"NotificationConfig":     map[string]any{"NotificationArn": "", "NotificationEvents": []any{}, "NotificationType": ""},
			"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
		}
		if details {
			m["CommandPlugins"] = []any{map[string]any{
				"Name": inv.PluginName, "Status": inv.Status, "StatusDetails": inv.StatusDetails,
				"ResponseCode": inv.ResponseCode, "ResponseStartDateTime": inv.ExecutionStartDateTime,
				"ResponseFinishDateTime": inv.ExecutionEndDateTime,
				"Output":                 s.output(id, iid, "stdout", maxDetailsOutputChars),
				"StandardOutputUrl":      "", "StandardErrorUrl": "", "OutputS3Region": "",
			}}
		}
		out = append(out, m)
	}
	return map[string]any{"CommandInvocations": out}, nil
}

func getCommandInvocation(ctx context.Context, s *store, a *args) (any, error) {
	id, err := a.required("command-id")
	if err != nil {
		return nil, err
	}
	iid, err := a.required("instance-id")
	if err != nil {
		return nil, err
	}
	if _, err := s.command(id); err != nil {
		return nil, err
	}
	inv, err := s.invocation(id, iid)
	if err != nil {
		return nil, err
	}
	if p, _ := a.str("plugin-name"); p != "" && p != inv.PluginName {
		return nil, apiErr("InvalidPluginName", "")
	}
	elapsed := ""
	if inv.ExecutionStartDateTime != "" && inv.ExecutionEndDateTime != "" {
		st, _ := time.Parse("2006-01-02T15:04:05.000000-07:00", inv.ExecutionStartDateTime)
		en, _ := time.Parse("2006-01-02T15:04:05.000000-07:00", inv.ExecutionEndDateTime)
		elapsed = fmt.Sprintf("PT%.3fS", en.Sub(st).Seconds())
	}
	return map[string]any{
		"CommandId": inv.CommandId, "InstanceId": inv.InstanceId, "Comment": inv.Comment,
		"DocumentName": inv.DocumentName, "DocumentVersion": inv.DocumentVersion, "PluginName": inv.PluginName,
		"ResponseCode": inv.ResponseCode, "ExecutionStartDateTime": inv.ExecutionStartDateTime,
		"ExecutionElapsedTime": elapsed, "ExecutionEndDateTime": inv.ExecutionEndDateTime,
		"Status": inv.Status, "StatusDetails": inv.StatusDetails,
		"StandardOutputContent": s.output(id, iid, "stdout", maxOutputChars), "StandardOutputUrl": "",
		"StandardErrorContent": s.output(id, iid, "stderr", maxOutputChars), "StandardErrorUrl": "",
		"CloudWatchOutputConfig": map[string]any{"CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false},
	}, nil
}

// cancelCommand asks the runner to stop: invocations not yet sent end
// Cancelled, running ones are killed. A command already over is left alone.
func cancelCommand(ctx context.Context, s *store, a *args) (any, error) {
	id, err := a.required("command-id")
	if err != nil {
		return nil, err
	}
	if len(a.list("instance-ids")) > 0 {
		return nil, apiErr("ValidationException", "the fake cancels whole commands only")
	}
	if _, err := s.command(id); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(s.commandDir(id), "cancel"), []byte(awsTime(time.Now())+"\n")); err != nil {
		return nil, err
	}
	return nil, nil
}
