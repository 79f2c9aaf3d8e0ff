package awstest

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the generated SSM document resources in ../bootstrap.yaml")

const (
	beginDocuments = "  # BEGIN GENERATED SSM DOCUMENTS"
	endDocuments   = "  # END GENERATED SSM DOCUMENTS"
	// ownerPlaceholder is how the document sources name the images' owner; in the
	// template it becomes the ImageOwner parameter through Fn::Sub.
	ownerPlaceholder = "OWNER"
	ownerParameter   = "${ImageOwner}"
)

// documentSource is one deploy/ssm-NAME.yaml and the resource it becomes.
type documentSource struct {
	path    string
	logical string // NameDocument, e.g. AgentUpgradeDocument
	name    string // the SSM document's name, e.g. MyWebChat-AgentUpgrade
}

// documentSources lists deploy/ssm-*.yaml: every one is a document of the stack.
func documentSources(t *testing.T) []documentSource {
	t.Helper()
	paths, err := filepath.Glob("../../ssm-*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no deploy/ssm-*.yaml found (%v)", err)
	}
	var docs []documentSource
	for _, p := range paths {
		base := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "ssm-"), ".yaml")
		var camel strings.Builder
		for _, part := range strings.Split(base, "-") {
			if part == "" {
				t.Fatalf("%s: file name must be ssm-word[-word…].yaml", p)
			}
			camel.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
		docs = append(docs, documentSource{path: p, logical: camel.String() + "Document", name: "MyWebChat-" + camel.String()})
	}
	return docs
}

// subOwner rewrites a source scalar for the template: OWNER becomes the ImageOwner
// parameter (Fn::Sub), and a literal "${" is escaped as Fn::Sub wants ("${!").
func subOwner(n *yaml.Node) {
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && strings.Contains(n.Value, ownerPlaceholder) {
		n.Tag = "!Sub"
		n.Value = strings.ReplaceAll(strings.ReplaceAll(n.Value, "${", "${!"), ownerPlaceholder, ownerParameter)
		if n.Style == 0 {
			n.Style = yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		subOwner(c)
	}
}

// renderDocuments renders the AWS::SSM::Document resources for the sources.
func renderDocuments(t *testing.T, docs []documentSource) string {
	t.Helper()
	var out strings.Builder
	fmt.Fprintln(&out, beginDocuments)
	fmt.Fprintln(&out, "  # Generated from deploy/ssm-*.yaml by the test named at the top; do not edit here.")
	for _, d := range docs {
		src, err := os.ReadFile(d.path)
		if err != nil {
			t.Fatal(err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal(src, &root); err != nil {
			t.Fatalf("%s: %v", d.path, err)
		}
		content := root.Content[0]
		subOwner(content)
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(content); err != nil {
			t.Fatalf("%s: %v", d.path, err)
		}
		fmt.Fprintf(&out, "  %s:\n", d.logical)
		fmt.Fprintf(&out, "    Type: AWS::SSM::Document\n")
		fmt.Fprintf(&out, "    Properties:\n")
		fmt.Fprintf(&out, "      Name: %s\n", d.name)
		fmt.Fprintf(&out, "      DocumentType: Command\n")
		fmt.Fprintf(&out, "      DocumentFormat: JSON # Content below is an object, which CloudFormation passes as JSON\n")
		fmt.Fprintf(&out, "      # A changed document becomes a new default version of the same name.\n")
		fmt.Fprintf(&out, "      UpdateMethod: NewVersion\n")
		fmt.Fprintf(&out, "      Content:\n")
		for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
			fmt.Fprintf(&out, "        %s\n", line)
		}
	}
	out.WriteString(endDocuments + "\n")
	return out.String()
}

// TestDocumentsGenerated: the document resources in bootstrap.yaml are exactly what
// deploy/ssm-*.yaml render to; -update rewrites them.
func TestDocumentsGenerated(t *testing.T) {
	const path = "../bootstrap.yaml"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, beginDocuments+"\n"), strings.Index(s, endDocuments+"\n")
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %q … %q markers", path, beginDocuments, endDocuments)
	}
	got := s[i : j+len(endDocuments)+1]
	want := renderDocuments(t, documentSources(t))
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(s[:i]+want+s[j+len(endDocuments)+1:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s: the SSM documents differ from deploy/ssm-*.yaml; run: go test ./deploy/aws/awstest -run TestDocuments -update", path)
}

// unSub undoes subOwner on a parsed template value, giving back the source's text.
func unSub(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if s, ok := x["Fn::Sub"].(string); ok && len(x) == 1 {
			return strings.ReplaceAll(strings.ReplaceAll(s, ownerParameter, ownerPlaceholder), "${!", "${")
		}
		m := map[string]any{}
		for k, e := range x {
			m[k] = unSub(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = unSub(e)
		}
		return s
	default:
		return v
	}
}

// TestDocumentsMatchSources parses the template as CloudFormation does and checks
// that every document resource's content is its source file's, and that every source
// file has its resource: one source for each document's text.
func TestDocumentsMatchSources(t *testing.T) {
	tpl := loadTemplate(t, "../bootstrap.yaml")
	resources := map[string]bool{}
	for _, name := range tpl.ofType("AWS::SSM::Document") {
		resources[name] = true
	}
	for _, d := range documentSources(t) {
		t.Run(filepath.Base(d.path), func(t *testing.T) {
			if !resources[d.logical] {
				t.Fatalf("bootstrap.yaml has no resource %s for %s", d.logical, d.path)
			}
			delete(resources, d.logical)
			p := tpl.props(d.logical)
			if p["Name"] != d.name || p["DocumentType"] != "Command" || p["UpdateMethod"] != "NewVersion" {
				t.Errorf("%s: Name %v, DocumentType %v, UpdateMethod %v; want %s, Command, NewVersion", d.logical, p["Name"], p["DocumentType"], p["UpdateMethod"], d.name)
			}
			src, err := os.ReadFile(d.path)
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := yaml.Unmarshal(src, &want); err != nil {
				t.Fatal(err)
			}
			if got := unSub(p["Content"]); !reflect.DeepEqual(got, want) {
				t.Errorf("%s's Content is not the text of %s:\n got %#v\nwant %#v", d.logical, d.path, got, want)
			}
		})
	}
	for name := range resources {
		t.Errorf("document resource %s has no source deploy/ssm-*.yaml", name)
	}
}
