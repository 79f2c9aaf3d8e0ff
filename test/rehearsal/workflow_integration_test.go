//go:build integration

package rehearsal

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// workflowStep is one step of a GitHub Actions job, as the workflow file
// spells it: the rehearsal runs its script unchanged.
type workflowStep struct {
	Name string            `yaml:"name"`
	ID   string            `yaml:"id"`
	Run  string            `yaml:"run"`
	Env  map[string]string `yaml:"env"`
}

type workflowFile struct {
	Jobs map[string]struct {
		Steps []workflowStep `yaml:"steps"`
	} `yaml:"jobs"`
}

// readStep returns the step of job whose id is one of keys or whose name
// starts with one of them.
func readStep(t testing.TB, file, job string, keys ...string) workflowStep {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read workflow: %v", err)
	}
	var wf workflowFile
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	j, ok := wf.Jobs[job]
	if !ok {
		t.Fatalf("%s has no job %q", file, job)
	}
	for _, key := range keys {
		for _, s := range j.Steps {
			if s.ID == key || strings.HasPrefix(s.Name, key) {
				if s.Run == "" {
					t.Fatalf("%s: step %q of job %s has no run: script", file, key, job)
				}
				return s
			}
		}
	}
	t.Fatalf("%s: job %s has no step %q", file, job, keys)
	return workflowStep{}
}

var expr = regexp.MustCompile(`\$\{\{[^}]*\}\}`)

// stepEnv gives each of the step's env keys the value from values, and
// fails when the step wants one the rehearsal does not know: a new input to
// the step must be given a value here, on purpose.
func stepEnv(t testing.TB, s workflowStep, values map[string]string) []string {
	t.Helper()
	var env []string
	for k, v := range s.Env {
		if !expr.MatchString(v) {
			env = append(env, k+"="+v)
			continue
		}
		val, ok := values[k]
		if !ok {
			t.Fatalf("step %q wants env %s = %s, which the rehearsal does not provide", s.Name, k, v)
		}
		env = append(env, k+"="+val)
	}
	return env
}

// stepCommand returns a command that runs a step's script the way the
// runner does (bash --noprofile --norc -eo pipefail FILE) in dir with env.
func stepCommand(t testing.TB, dir, script string, env []string) *exec.Cmd {
	t.Helper()
	f, err := os.CreateTemp(dir, "step-*.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(script); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", f.Name())
	cmd.Dir = dir
	cmd.Env = env
	return cmd
}
