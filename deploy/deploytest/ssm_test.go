package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/mywebchat/mywebchat/test/rehearsal/javaregex"
)

// ssmDocument is the part of an SSM Command document (schema 2.2) the tests
// read.
type ssmDocument struct {
	SchemaVersion string `yaml:"schemaVersion"`
	Parameters    map[string]struct {
		Type           string  `yaml:"type"`
		Default        *string `yaml:"default"`
		AllowedPattern string  `yaml:"allowedPattern"`
	} `yaml:"parameters"`
	MainSteps []struct {
		Action string `yaml:"action"`
		Inputs struct {
			RunCommand     []string `yaml:"runCommand"`
			TimeoutSeconds string   `yaml:"timeoutSeconds"`
		} `yaml:"inputs"`
	} `yaml:"mainSteps"`
}

// owner stands in for the GitHub owner an operator substitutes for OWNER.
const owner = "acme"

func loadSSMDocument(t *testing.T) ssmDocument {
	t.Helper()
	return loadDocument(t, "../ssm-deploy.yaml")
}

func loadDocument(t *testing.T, path string) ssmDocument {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc ssmDocument
	dec := yaml.NewDecoder(strings.NewReader(strings.ReplaceAll(string(b), "OWNER", owner)))
	dec.KnownFields(false)
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return doc
}

func TestSSMDocumentShape(t *testing.T) {
	doc := loadSSMDocument(t)
	if doc.SchemaVersion != "2.2" {
		t.Errorf("schemaVersion: got %q, want 2.2", doc.SchemaVersion)
	}
	if len(doc.MainSteps) != 1 || doc.MainSteps[0].Action != "aws:runShellScript" {
		t.Fatalf("mainSteps: want one aws:runShellScript step, got %+v", doc.MainSteps)
	}
	script := strings.Join(doc.MainSteps[0].Inputs.RunCommand, "\n")
	for _, want := range []string{
		"ref='{{ImageRef}}'",
		`deploy-agent deploy --image "$ref" --wait=true`,
		`exit "$rc"`,
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	if p := doc.Parameters["ImageRef"]; p.Default != nil {
		t.Errorf("ImageRef has a default (%q); a deploy must name its image", *p.Default)
	}
}

// TestSSMImagePattern runs the deploy document's allowedPatterns (which also
// guard the parameters pasted into the shell script) against good and bad
// refs, with Java's regex engine: the one SSM uses, where `$` would also
// admit a final line break.
func TestSSMImagePattern(t *testing.T) {
	doc := loadSSMDocument(t)
	digest := strings.Repeat("0123456789abcdef", 4)
	sha := strings.Repeat("0123456789", 4)
	tests := []struct {
		param string
		ref   string
		ok    bool
	}{
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest, true},
		{"ImageRef", "ghcr.io/acme/mywebchat-app:sha-" + sha, true},
		{"ImageRef", "", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app:latest", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app", false},
		{"ImageRef", "ghcr.io/evil/mywebchat-app@sha256:" + digest, false},
		{"ImageRef", "ghcr.io/acme/mywebchat-nginx@sha256:" + digest, false},
		{"ImageRef", "docker.io/acme/mywebchat-app@sha256:" + digest, false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest[:63], false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + strings.ToUpper(digest), false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app:sha-" + sha[:39], false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app:sha-" + sha + "0", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest + "';reboot;'", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest + "\nreboot", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest + "\n", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest + "\r\n", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest + "\r", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest + "\u0085", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest + "\u2028", false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app:sha-" + sha + "\n", false},
		{"ImageRef", "\nghcr.io/acme/mywebchat-app@sha256:" + digest, false},
		{"ImageRef", "ghcr.io/acme/mywebchat-app:sha-" + sha + "@sha256:" + digest, false},
		{"ImageRef", "ghcrXio/acme/mywebchat-app@sha256:" + digest, false},
		{"ImageRef", "evil.example/ghcr.io/acme/mywebchat-app@sha256:" + digest, false},
		{"NginxImageRef", "", true},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx@sha256:" + digest, true},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx:sha-" + sha, true},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest, false},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx:latest", false},
		{"NginxImageRef", "nginx:1.27-alpine", false},
		{"NginxImageRef", "\n", false},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx@sha256:" + digest + "\n", false},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx@sha256:" + digest + "\r\n", false},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx:sha-" + sha + "\u0085", false},
	}
	cases := make([]javaregex.Case, len(tests))
	for i, tt := range tests {
		p, ok := doc.Parameters[tt.param]
		if !ok {
			t.Fatalf("parameter %s missing", tt.param)
		}
		cases[i] = javaregex.Case{Pattern: p.AllowedPattern, Value: tt.ref}
	}
	// SSM searches the value with the pattern (Java's Matcher.find): the
	// pattern must anchor itself at both ends.
	got, err := javaregex.Match(t.Context(), cases)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		if got[i] != tt.ok {
			t.Errorf("%s %q: match %v, want %v (pattern %q)", tt.param, tt.ref, got[i], tt.ok, cases[i].Pattern)
		}
	}
}

// goodValues are valid values of every parameter the documents declare;
// TestSSMDocuments refuses a parameter missing here.
var goodValues = map[string]string{
	"ImageRef":      "ghcr.io/acme/mywebchat-app@sha256:" + strings.Repeat("ab", 32),
	"NginxImageRef": "ghcr.io/acme/mywebchat-nginx:sha-" + strings.Repeat("0123456789", 4),
	"HistoryCount":  "10",
	"Release":       "sha-" + strings.Repeat("0123456789", 4),
	"BundleSha256":  strings.Repeat("0f", 32),
}

// lineEnds are what Java's `$` also matches before at the end of a value.
var lineEnds = []string{"\n", "\r\n", "\r", "\u0085", "\u2028", "\u2029"}

// TestSSMDocuments checks every SSM document in deploy/: one
// aws:runShellScript step with an execution timeout, every parameter
// pattern-guarded and refusing a good value followed by a line break or a
// shell metacharacter (Java's engine), and the script, with good values
// pasted in, clean under shellcheck as POSIX sh (SSM runs it with /bin/sh).
func TestSSMDocuments(t *testing.T) {
	files, err := filepath.Glob("../ssm-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %v, want the deploy, rollback, status and agent upgrade documents", files)
	}
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatal("shellcheck not found (scripts/setup.sh installs it)")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			doc := loadDocument(t, f)
			if doc.SchemaVersion != "2.2" {
				t.Errorf("schemaVersion %q, want 2.2", doc.SchemaVersion)
			}
			if len(doc.MainSteps) != 1 || doc.MainSteps[0].Action != "aws:runShellScript" {
				t.Fatalf("want one aws:runShellScript step")
			}
			if doc.MainSteps[0].Inputs.TimeoutSeconds == "" {
				t.Error("no timeoutSeconds: the step would run for up to an hour")
			}
			var cases []javaregex.Case
			var want []bool
			for name, p := range doc.Parameters {
				good, ok := goodValues[name]
				if !ok {
					t.Fatalf("parameter %s: add a valid value to goodValues", name)
				}
				if p.AllowedPattern == "" {
					t.Errorf("parameter %s has no allowedPattern, yet it is pasted into a shell script", name)
					continue
				}
				cases = append(cases, javaregex.Case{Pattern: p.AllowedPattern, Value: good})
				want = append(want, true)
				for _, end := range lineEnds {
					cases = append(cases, javaregex.Case{Pattern: p.AllowedPattern, Value: good + end})
					want = append(want, false)
				}
				for _, bad := range []string{"'", "';reboot;'", "$(reboot)", "`reboot`", " x"} {
					cases = append(cases, javaregex.Case{Pattern: p.AllowedPattern, Value: good + bad})
					want = append(want, false)
				}
			}
			got, err := javaregex.Match(t.Context(), cases)
			if err != nil {
				t.Fatal(err)
			}
			for i := range cases {
				if got[i] != want[i] {
					t.Errorf("pattern %q admits %q: %v, want %v", cases[i].Pattern, cases[i].Value, got[i], want[i])
				}
			}
			script := strings.Join(doc.MainSteps[0].Inputs.RunCommand, "\n")
			for name, v := range goodValues {
				script = regexp.MustCompile(`\{\{\s*`+name+`\s*\}\}`).ReplaceAllString(script, v)
			}
			if strings.Contains(script, "{{") {
				t.Errorf("script uses a placeholder that is not a parameter: %s", script)
			}
			cmd := exec.Command(shellcheck, "-s", "sh", "-")
			cmd.Stdin = strings.NewReader(script + "\n")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("shellcheck -s sh: %v\n%s", err, out)
			}
		})
	}
}
