package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mywebchat/mywebchat/test/rehearsal/javaregex"
)

// document is the part of an SSM Command document (schema 2.2) the fake
// understands.
type document struct {
	SchemaVersion string              `yaml:"schemaVersion"`
	Parameters    map[string]docParam `yaml:"parameters"`
	MainSteps     []struct {
		Action string `yaml:"action"`
		Name   string `yaml:"name"`
		Inputs struct {
			RunCommand     []string `yaml:"runCommand"`
			TimeoutSeconds any      `yaml:"timeoutSeconds"`
		} `yaml:"inputs"`
	} `yaml:"mainSteps"`
}

type docParam struct {
	Type           string   `yaml:"type"`
	Default        any      `yaml:"default"`
	AllowedPattern string   `yaml:"allowedPattern"`
	AllowedValues  []string `yaml:"allowedValues"`
}

// defaultExecutionTimeout is aws:runShellScript's timeoutSeconds when the
// document gives none.
const defaultExecutionTimeout = 3600

var docName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{3,128}$`)

func (s *store) document(name string) (*document, error) {
	if !docName.MatchString(name) {
		return nil, apiErr("InvalidDocument", "Document name %q is not valid", name)
	}
	b, err := os.ReadFile(s.path("documents", name+".yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, apiErr("InvalidDocument", "Document with name %s does not exist.", name)
	}
	if err != nil {
		return nil, err
	}
	return parseDocument(b)
}

func parseDocument(b []byte) (*document, error) {
	var d document
	if err := yaml.Unmarshal(b, &d); err != nil {
		return nil, apiErr("InvalidDocumentContent", "YAML: %v", err)
	}
	if d.SchemaVersion != "2.2" {
		return nil, apiErr("InvalidDocumentSchemaVersion", "schemaVersion %q: the fake runs Command documents of schema 2.2", d.SchemaVersion)
	}
	if len(d.MainSteps) != 1 || d.MainSteps[0].Action != "aws:runShellScript" {
		return nil, apiErr("InvalidDocumentContent", "the fake runs documents with exactly one aws:runShellScript step")
	}
	for name, p := range d.Parameters {
		switch p.Type {
		case "String":
		default:
			return nil, apiErr("InvalidDocumentContent", "parameter %s: type %q (the fake supports String)", name, p.Type)
		}
		if p.Default != nil {
			if _, ok := p.Default.(string); !ok {
				return nil, apiErr("InvalidDocumentContent", "parameter %s: default must be a string", name)
			}
		}
	}
	return &d, nil
}

var placeholder = regexp.MustCompile(`\{\{\s*([^{}\s]+)\s*\}\}`)

// rendered is a document with its parameters checked and substituted.
type rendered struct {
	Step             string
	Script           string
	ExecutionTimeout int
	Params           map[string]string
}

// render checks the supplied parameters against the document (names,
// allowedValues, allowedPattern under Java's engine) and substitutes them.
// Nothing is sent when it fails.
func (d *document) render(ctx context.Context, name string, supplied map[string][]string) (*rendered, error) {
	values := map[string]string{}
	for k, v := range supplied {
		p, ok := d.Parameters[k]
		if !ok {
			return nil, apiErr("InvalidParameters", "document %s does not support parameter %q", name, k)
		}
		if p.Type == "String" && len(v) != 1 {
			return nil, apiErr("InvalidParameters", "parameter %q is a String and takes exactly one value, got %d", k, len(v))
		}
		values[k] = v[0]
	}
	var cases []javaregex.Case
	var caseNames []string
	for k, p := range d.Parameters {
		if _, ok := values[k]; !ok {
			if p.Default == nil {
				return nil, apiErr("InvalidParameters", "document %s requires parameter %q", name, k)
			}
			values[k] = p.Default.(string)
		}
		if len(p.AllowedValues) > 0 && !contains(p.AllowedValues, values[k]) {
			return nil, apiErr("InvalidParameters", "parameter %q value %q is not one of the allowed values %q", k, values[k], p.AllowedValues)
		}
		if p.AllowedPattern != "" {
			cases = append(cases, javaregex.Case{Pattern: p.AllowedPattern, Value: values[k]})
			caseNames = append(caseNames, k)
		}
	}
	ok, err := javaregex.Match(ctx, cases)
	if err != nil {
		return nil, fmt.Errorf("check allowedPattern: %w", err)
	}
	for i, m := range ok {
		if !m {
			k := caseNames[i]
			return nil, apiErr("InvalidParameters", "Parameter %q %q failed to satisfy constraint: Member must satisfy regular expression pattern: %s",
				k, values[k], d.Parameters[k].AllowedPattern)
		}
	}
	var missing error
	subst := func(s string) string {
		return placeholder.ReplaceAllStringFunc(s, func(m string) string {
			k := placeholder.FindStringSubmatch(m)[1]
			v, ok := values[k]
			if !ok && missing == nil {
				missing = apiErr("InvalidDocumentContent", "document %s uses {{ %s }}, which is not one of its parameters", name, k)
			}
			return v
		})
	}
	step := d.MainSteps[0]
	lines := make([]string, len(step.Inputs.RunCommand))
	for i, l := range step.Inputs.RunCommand {
		lines[i] = subst(l)
	}
	timeout := defaultExecutionTimeout
	switch t := step.Inputs.TimeoutSeconds.(type) {
	case nil:
	case int:
		timeout = t
	case string:
		n, err := strconv.Atoi(strings.TrimSpace(subst(t)))
		if missing != nil {
			return nil, missing
		}
		if err != nil {
			return nil, apiErr("InvalidDocumentContent", "timeoutSeconds %q is not a number", t)
		}
		timeout = n
	default:
		return nil, apiErr("InvalidDocumentContent", "timeoutSeconds must be a number")
	}
	if missing != nil {
		return nil, missing
	}
	if timeout < 1 || timeout > 172800 {
		return nil, apiErr("InvalidDocumentContent", "timeoutSeconds %d is outside 1..172800", timeout)
	}
	return &rendered{Step: step.Name, Script: strings.Join(lines, "\n") + "\n", ExecutionTimeout: timeout, Params: values}, nil
}

func contains(list []string, v string) bool {
	for _, e := range list {
		if e == v {
			return true
		}
	}
	return false
}

// createDocument registers (or replaces) a document: --content is the
// document text or file://PATH.
func createDocument(ctx context.Context, s *store, a *args) (any, error) {
	name, err := a.required("name")
	if err != nil {
		return nil, err
	}
	content, err := a.required("content")
	if err != nil {
		return nil, err
	}
	if t, _ := a.str("document-type"); t != "" && t != "Command" {
		return nil, apiErr("InvalidDocumentType", "the fake registers Command documents, not %q", t)
	}
	if f, _ := a.str("document-format"); f != "" && f != "YAML" {
		return nil, apiErr("InvalidDocumentContent", "the fake reads YAML documents, not %q", f)
	}
	a.str("document-version")
	if !docName.MatchString(name) {
		return nil, apiErr("ValidationException", "document name %q must match %s", name, docName)
	}
	b := []byte(content)
	if p, ok := strings.CutPrefix(content, "file://"); ok {
		if b, err = os.ReadFile(p); err != nil {
			return nil, usagef("Error parsing parameter '--content': Unable to load paramfile %s: %v", content, err)
		}
	}
	if _, err := parseDocument(b); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(s.path("documents", name+".yaml"), b); err != nil {
		return nil, err
	}
	return map[string]any{"DocumentDescription": map[string]any{"Name": name, "DocumentType": "Command",
		"DocumentFormat": "YAML", "SchemaVersion": "2.2", "Status": "Active"}}, nil
}
