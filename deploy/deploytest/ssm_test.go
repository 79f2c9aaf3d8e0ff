package deploytest

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
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
			RunCommand []string `yaml:"runCommand"`
		} `yaml:"inputs"`
	} `yaml:"mainSteps"`
}

// owner stands in for the GitHub owner an operator substitutes for OWNER.
const owner = "acme"

func loadSSMDocument(t *testing.T) ssmDocument {
	t.Helper()
	b, err := os.ReadFile("../ssm-deploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc ssmDocument
	dec := yaml.NewDecoder(strings.NewReader(strings.ReplaceAll(string(b), "OWNER", owner)))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("parse ssm-deploy.yaml: %v", err)
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

// TestSSMImagePattern runs the documents' allowedPatterns (which also guard
// the parameters pasted into the shell script) against good and bad refs.
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
		{"ImageRef", "ghcr.io/acme/mywebchat-app:sha-" + sha + "@sha256:" + digest, false},
		{"ImageRef", "ghcrXio/acme/mywebchat-app@sha256:" + digest, false},
		{"ImageRef", "evil.example/ghcr.io/acme/mywebchat-app@sha256:" + digest, false},
		{"NginxImageRef", "", true},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx@sha256:" + digest, true},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx:sha-" + sha, true},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-app@sha256:" + digest, false},
		{"NginxImageRef", "ghcr.io/acme/mywebchat-nginx:latest", false},
		{"NginxImageRef", "nginx:1.27-alpine", false},
	}
	for _, tt := range tests {
		t.Run(tt.param+"/"+tt.ref, func(t *testing.T) {
			p, ok := doc.Parameters[tt.param]
			if !ok {
				t.Fatalf("parameter %s missing", tt.param)
			}
			// SSM matches the whole value against the pattern (Java regex);
			// the pattern anchors itself, and uses only syntax both engines share.
			re, err := regexp.Compile(p.AllowedPattern)
			if err != nil {
				t.Fatalf("allowedPattern %q: %v", p.AllowedPattern, err)
			}
			if got := re.MatchString(tt.ref); got != tt.ok {
				t.Errorf("%s %q: match %v, want %v (pattern %q)", tt.param, tt.ref, got, tt.ok, p.AllowedPattern)
			}
		})
	}
}

// TestSSMPatternPlaceholder checks that an unedited document admits no real
// owner: OWNER is upper case, which GHCR never uses.
func TestSSMPatternPlaceholder(t *testing.T) {
	b, err := os.ReadFile("../ssm-deploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "ghcr\\\\.io/OWNER/mywebchat-app") {
		t.Fatal("ssm-deploy.yaml: the image pattern no longer names the OWNER placeholder")
	}
}
