package deploytest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// workflow is the part of a GitHub Actions workflow the policy checks read.
type workflow struct {
	Permissions yaml.Node `yaml:"permissions"`
	Jobs        map[string]struct {
		Permissions yaml.Node `yaml:"permissions"`
		Steps       []struct {
			Uses string            `yaml:"uses"`
			With map[string]string `yaml:"with"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

// pinned matches a third-party action pinned by full commit SHA with the
// release it stands for in a comment, e.g. "@<40 hex> # v4.2.2".
var pinned = regexp.MustCompile(`uses: [\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+)*$`)

// TestWorkflowPolicy checks what the project asks of every workflow: no
// permissions at the top, explicit grants per job, actions pinned by commit
// SHA, and checkouts that do not keep the token.
func TestWorkflowPolicy(t *testing.T) {
	files, err := filepath.Glob("../../.github/workflows/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d workflows, want ci.yml and release.yml at least", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var w workflow
			if err := yaml.Unmarshal(b, &w); err != nil {
				t.Fatalf("parse: %v", err)
			}
			if w.Permissions.Kind != yaml.MappingNode || len(w.Permissions.Content) != 0 {
				t.Errorf("top-level permissions must be {} (line %d)", w.Permissions.Line)
			}
			for name, job := range w.Jobs {
				if job.Permissions.Kind != yaml.MappingNode {
					t.Errorf("job %s: no explicit permissions", name)
				}
				for _, s := range job.Steps {
					if strings.HasPrefix(s.Uses, "actions/checkout@") && s.With["persist-credentials"] != "false" {
						t.Errorf("job %s: checkout without persist-credentials: false", name)
					}
				}
			}
			for i, line := range strings.Split(string(b), "\n") {
				if !strings.Contains(line, "uses: ") || strings.Contains(line, "uses: ./") {
					continue
				}
				if !pinned.MatchString(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "- "))) {
					t.Errorf("line %d: %q is not pinned as uses: owner/repo@<sha> # vX.Y.Z", i+1, strings.TrimSpace(line))
				}
			}
		})
	}
}
