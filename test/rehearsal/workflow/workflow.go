// Package workflow runs one step of a GitHub Actions workflow on this
// machine, taken from the workflow file itself (never a copy): its `run:`
// script and its `env:` block, with the `${{ }}` expressions evaluated
// against a context the caller gives (vars, steps outputs, inputs, github).
// The rehearsal uses it to run release.yml's rollout step against the fake
// aws CLI. It evaluates the expression forms the workflows use: context
// paths, string and number literals, `||`, `&&`, `!`, `==`, `!=` and
// fromJSON; anything else is an error, never a silent empty string.
package workflow

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Step is one step of a job as the workflow file writes it.
type Step struct {
	ID    string            `yaml:"id"`
	Name  string            `yaml:"name"`
	Run   string            `yaml:"run"`
	Shell string            `yaml:"shell"`
	Env   map[string]string `yaml:"env"`
}

type file struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]struct {
		Env            map[string]string `yaml:"env"`
		TimeoutMinutes string            `yaml:"timeout-minutes"`
		Steps          []Step            `yaml:"steps"`
	} `yaml:"jobs"`
}

// Job is the part of a job a step runs with.
type Job struct {
	Env            map[string]string // workflow env, then job env
	TimeoutMinutes string            // as written, maybe an expression
	Steps          []Step
}

// Load reads job from a workflow file.
func Load(path, job string) (*Job, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f file
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	j, ok := f.Jobs[job]
	if !ok {
		return nil, fmt.Errorf("%s: no job %q", path, job)
	}
	env := map[string]string{}
	for k, v := range f.Env {
		env[k] = v
	}
	for k, v := range j.Env {
		env[k] = v
	}
	return &Job{Env: env, TimeoutMinutes: j.TimeoutMinutes, Steps: j.Steps}, nil
}

// Step returns the step with this id.
func (j *Job) Step(id string) (*Step, error) {
	for i := range j.Steps {
		if j.Steps[i].ID == id {
			return &j.Steps[i], nil
		}
	}
	return nil, fmt.Errorf("no step with id %q", id)
}

// Context is what expressions read: {"vars": {...}, "steps": {"refs":
// {"outputs": {...}}}, "github": {...}, "inputs": {...}}. A missing
// property is null, as in Actions.
type Context map[string]any

var exprRe = regexp.MustCompile(`\$\{\{(.*?)\}\}`)

// Expand replaces every ${{ expr }} in s.
func (c Context) Expand(s string) (string, error) {
	var firstErr error
	out := exprRe.ReplaceAllStringFunc(s, func(m string) string {
		v, err := c.Eval(exprRe.FindStringSubmatch(m)[1])
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", m, err)
		}
		return toString(v)
	})
	return out, firstErr
}

// Command prepares the step's script to run as Actions runs a bash step
// (`bash -e FILE`, or `bash --noprofile --norc -eo pipefail FILE` for
// `shell: bash`), in dir, with the runner's environment base plus the
// job's and the step's env evaluated against c. The script file is
// written under dir.
func (j *Job) Command(ctx context.Context, s *Step, c Context, base []string, dir string) (*exec.Cmd, error) {
	if s.Run == "" {
		return nil, fmt.Errorf("step %q has no run script", s.ID)
	}
	env := append([]string{}, base...)
	for _, block := range []map[string]string{j.Env, s.Env} {
		for k, raw := range block {
			v, err := c.Expand(raw)
			if err != nil {
				return nil, fmt.Errorf("env %s: %w", k, err)
			}
			env = append(env, k+"="+v)
		}
	}
	script, err := c.Expand(s.Run)
	if err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	path := filepath.Join(dir, "step-"+s.ID+".sh")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		return nil, err
	}
	var args []string
	switch s.Shell {
	case "":
		args = []string{"-e", path}
	case "bash":
		args = []string{"--noprofile", "--norc", "-eo", "pipefail", path}
	default:
		return nil, fmt.Errorf("step %q: shell %q is not bash", s.ID, s.Shell)
	}
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Dir = dir
	cmd.Env = env
	return cmd, nil
}

func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		return fmt.Sprint(x)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case float64:
		return x != 0
	default:
		return true
	}
}

// Eval evaluates one expression (without the ${{ }}).
func (c Context) Eval(expr string) (any, error) {
	p := &parser{toks: tokenize(expr), ctx: c}
	v, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos != len(p.toks) {
		return nil, fmt.Errorf("unexpected %q in %q", p.toks[p.pos], expr)
	}
	return v, nil
}

var tokRe = regexp.MustCompile(`\s*('(?:[^']|'')*'|\|\||&&|==|!=|!|\(|\)|,|[A-Za-z_][A-Za-z0-9_.\-]*|[0-9]+(?:\.[0-9]+)?)`)

func tokenize(s string) []string {
	var toks []string
	for {
		s = strings.TrimLeft(s, " \t\n")
		if s == "" {
			return toks
		}
		m := tokRe.FindStringSubmatchIndex(s)
		if m == nil || m[0] != 0 {
			return append(toks, "\x00"+s) // an error token
		}
		toks = append(toks, s[m[2]:m[3]])
		s = s[m[1]:]
	}
}

type parser struct {
	toks []string
	pos  int
	ctx  Context
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *parser) or() (any, error) {
	v, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peek() == "||" {
		p.pos++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		if !truthy(v) {
			v = r
		}
	}
	return v, nil
}

func (p *parser) and() (any, error) {
	v, err := p.cmp()
	if err != nil {
		return nil, err
	}
	for p.peek() == "&&" {
		p.pos++
		r, err := p.cmp()
		if err != nil {
			return nil, err
		}
		if truthy(v) {
			v = r
		}
	}
	return v, nil
}

func (p *parser) cmp() (any, error) {
	v, err := p.unary()
	if err != nil {
		return nil, err
	}
	if op := p.peek(); op == "==" || op == "!=" {
		p.pos++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		eq := strings.EqualFold(toString(v), toString(r))
		return eq == (op == "=="), nil
	}
	return v, nil
}

func (p *parser) unary() (any, error) {
	if p.peek() == "!" {
		p.pos++
		v, err := p.unary()
		if err != nil {
			return nil, err
		}
		return !truthy(v), nil
	}
	return p.primary()
}

func (p *parser) primary() (any, error) {
	t := p.peek()
	if t == "" {
		return nil, fmt.Errorf("expression ends early")
	}
	p.pos++
	switch {
	case strings.HasPrefix(t, "\x00"):
		return nil, fmt.Errorf("cannot read %q", t[1:])
	case t == "(":
		v, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing )")
		}
		p.pos++
		return v, nil
	case strings.HasPrefix(t, "'"):
		return strings.ReplaceAll(t[1:len(t)-1], "''", "'"), nil
	case t[0] >= '0' && t[0] <= '9':
		var f float64
		fmt.Sscan(t, &f)
		return f, nil
	case t == "true" || t == "false":
		return t == "true", nil
	case t == "null":
		return nil, nil
	case p.peek() == "(":
		p.pos++
		var args []any
		for p.peek() != ")" {
			a, err := p.or()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if p.peek() == "," {
				p.pos++
			}
		}
		p.pos++
		return call(t, args)
	default:
		return p.ctx.lookup(t)
	}
}

func call(name string, args []any) (any, error) {
	switch strings.ToLower(name) {
	case "fromjson":
		if len(args) != 1 {
			return nil, fmt.Errorf("fromJSON takes one argument")
		}
		var v any
		if err := json.Unmarshal([]byte(toString(args[0])), &v); err != nil {
			return nil, fmt.Errorf("fromJSON(%q): %w", toString(args[0]), err)
		}
		return v, nil
	default:
		return nil, fmt.Errorf("function %s is not supported here", name)
	}
}

func (c Context) lookup(path string) (any, error) {
	parts := strings.Split(path, ".")
	root, ok := c[parts[0]]
	if !ok {
		return nil, fmt.Errorf("unknown context %q (give it in the Context)", parts[0])
	}
	v := root
	for _, k := range parts[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, nil
		}
		v = m[k]
	}
	return v, nil
}
