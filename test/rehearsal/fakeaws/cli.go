package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes of the AWS CLI v2.
const (
	exitServiceError = 254
	exitUsage        = 252
)

// runnerArg is the hidden first argument that turns this binary into the
// detached runner of one command.
const runnerArg = "__fakeaws-runner"

// apiError is an error the service would return: the CLI prints it as
// "An error occurred (Code) when calling the Op operation: Message".
type apiError struct {
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func apiErr(code, format string, args ...any) error {
	return &apiError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// usageError is a malformed command line (exit 252).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// args holds the parsed options of one call: each --name maps to the words
// that followed it (none for a flag).
type args struct {
	opts map[string][]string
}

// globalOpts are accepted by every operation.
var globalOpts = map[string]bool{"query": true, "output": true, "region": true, "profile": true,
	"no-cli-pager": true, "no-paginate": true, "color": true, "debug": true}

func parseArgs(words []string) (*args, error) {
	a := &args{opts: map[string][]string{}}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") || len(w) == 2 {
			return nil, usagef("unexpected argument %q (options are --name value)", w)
		}
		name := w[2:]
		if k, v, ok := strings.Cut(name, "="); ok {
			a.opts[k] = append(a.opts[k], v)
			continue
		}
		vals, seen := a.opts[name]
		if !seen {
			vals = []string{}
		}
		for i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
			i++
			vals = append(vals, words[i])
		}
		a.opts[name] = vals
	}
	return a, nil
}

// str returns the single value of --name, "" when absent.
func (a *args) str(name string) (string, error) {
	v, ok := a.opts[name]
	if !ok {
		return "", nil
	}
	if len(v) != 1 {
		return "", usagef("--%s takes one value, got %d", name, len(v))
	}
	return v[0], nil
}

func (a *args) required(name string) (string, error) {
	v, err := a.str(name)
	if err != nil {
		return "", err
	}
	if _, ok := a.opts[name]; !ok {
		return "", usagef("the following arguments are required: --%s", name)
	}
	return v, nil
}

func (a *args) list(name string) []string {
	return a.opts[name]
}

// flag reads a boolean --name / --no-name pair.
func (a *args) flag(name string) bool {
	_, on := a.opts[name]
	return on
}

// operation is one CLI operation: the options it accepts (checked before it
// runs, so a typo changes nothing) and what it does.
type operation struct {
	opts string // space-separated option names
	fn   func(ctx context.Context, s *store, a *args) (any, error)
}

var operations = map[string]map[string]operation{
	"ssm": {
		"send-command": {"document-name document-version instance-ids targets parameters max-concurrency " +
			"max-errors timeout-seconds comment", sendCommand},
		"list-commands":                 {"command-id instance-id", listCommands},
		"list-command-invocations":      {"command-id instance-id details no-details", listCommandInvocations},
		"get-command-invocation":        {"command-id instance-id plugin-name", getCommandInvocation},
		"cancel-command":                {"command-id instance-ids", cancelCommand},
		"describe-instance-information": {"filters", describeInstanceInformation},
		"get-parameter":                 {"name with-decryption no-with-decryption", getParameter},
		"put-parameter":                 {"name value type overwrite no-overwrite description", putParameter},
		"create-document":               {"name content document-type document-format", createDocument},
		"update-document":               {"name content document-type document-format document-version", createDocument},
	},
	"ec2": {
		"describe-instances": {"instance-ids filters", describeInstances},
		"create-tags":        {"resources tags", createTags},
		"delete-tags":        {"resources tags", deleteTags},
	},
}

// checkOpts refuses options the operation does not know.
func (a *args) checkOpts(allowed string) error {
	ok := map[string]bool{}
	for _, o := range strings.Fields(allowed) {
		ok[o] = true
	}
	for k := range a.opts {
		if !ok[k] && !globalOpts[k] {
			return usagef("Unknown options: --%s", k)
		}
	}
	return nil
}

// opName turns "send-command" into "SendCommand" for error messages.
func opName(op string) string {
	var b strings.Builder
	for _, p := range strings.Split(op, "-") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

func run(ctx context.Context, argv []string, stdout, stderr io.Writer) int {
	if len(argv) == 2 && argv[0] == runnerArg {
		s, err := openStore()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := runCommand(ctx, s, argv[1]); err != nil {
			fmt.Fprintln(stderr, "runner:", err)
			return 1
		}
		return 0
	}
	if len(argv) < 2 {
		fmt.Fprintln(stderr, "usage: aws SERVICE OPERATION [--option value ...] (fake AWS CLI for the rehearsal)")
		return exitUsage
	}
	service, op := argv[0], argv[1]
	opn, ok := operations[service][op]
	if !ok {
		fmt.Fprintf(stderr, "aws: error: the fake AWS CLI does not implement %q %q\n", service, op)
		return exitUsage
	}
	s, err := openStore()
	if err != nil {
		fmt.Fprintf(stderr, "aws: error: %v\n", err)
		return exitUsage
	}
	s.logCall(argv)
	a, err := parseArgs(argv[2:])
	if err == nil {
		err = a.checkOpts(opn.opts)
	}
	if err == nil {
		err = s.fault(service, op)
	}
	var result any
	if err == nil {
		result, err = opn.fn(ctx, s, a)
	}
	var out []byte
	if err == nil {
		out, err = render(result, a)
	}
	if err != nil {
		var ae *apiError
		var ue *usageError
		switch {
		case errors.As(err, &ae):
			fmt.Fprintf(stderr, "\nAn error occurred (%s) when calling the %s operation: %s\n", ae.Code, opName(op), ae.Message)
			return exitServiceError
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "\naws: error: %s\n", ue.msg)
			return exitUsage
		default:
			fmt.Fprintf(stderr, "\naws: error: %v\n", err)
			return exitServiceError
		}
	}
	stdout.Write(out)
	return 0
}

// render applies --query and --output to an operation's result. A nil
// result (operations with no output) prints nothing, as the CLI does.
func render(result any, a *args) ([]byte, error) {
	if result == nil {
		return nil, nil
	}
	// Round-trip through JSON so the query sees what the CLI sees: maps,
	// slices, strings, float64 numbers and bools.
	raw, err := json.Marshal(result)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	var data any
	if err := json.Unmarshal(raw, &data); err != nil {
		return nil, fmt.Errorf("decode result: %w", err)
	}
	query, err := a.str("query")
	if err != nil {
		return nil, err
	}
	if query != "" {
		if data, err = jmesSearch(query, data); err != nil {
			return nil, usagef("bad value for --query %s: %v", query, err)
		}
	}
	format, err := a.str("output")
	if err != nil {
		return nil, err
	}
	if format == "" {
		format = os.Getenv("AWS_DEFAULT_OUTPUT")
	}
	switch format {
	case "", "json":
		b, err := json.MarshalIndent(data, "", "    ")
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil
	case "text":
		var b strings.Builder
		formatText(&b, data)
		return []byte(b.String()), nil
	default:
		return nil, usagef("argument --output: Invalid choice %q, valid choices are: json | text", format)
	}
}
