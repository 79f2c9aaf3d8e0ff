package awstest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCfnLint runs cfn-lint on every template: no error and no warning. It fails,
// never skips, where cfn-lint is missing (scripts/setup.sh says how to install it).
func TestCfnLint(t *testing.T) {
	t.Parallel() // slow: an external tool, run beside the other tests
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatal("cfn-lint is not installed: `pip install cfn-lint` (scripts/setup.sh checks for it)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--format", "parseable", "--"}, templates...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("cfn-lint %s: %v\n%s", strings.Join(templates, " "), err, out)
	}
}

// maxInlineTemplate is the largest template `aws cloudformation deploy --template-file`
// sends inline; a bigger one would need an S3 bucket, which up.sh does not create.
const maxInlineTemplate = 51200

func TestTemplateSize(t *testing.T) {
	for _, p := range templates {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxInlineTemplate {
			t.Errorf("%s is %d bytes; up.sh can deploy at most %d without an S3 bucket", p, fi.Size(), maxInlineTemplate)
		}
	}
}
