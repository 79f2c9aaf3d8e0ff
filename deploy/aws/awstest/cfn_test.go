package awstest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// templates are the stacks up.sh deploys, relative to this package.
var templates = []string{"../bootstrap.yaml", "../host.yaml", "../fleet.yaml"}

// shortFunctions maps CloudFormation's YAML short forms to their JSON names.
var shortFunctions = map[string]string{
	"!Base64": "Fn::Base64", "!Cidr": "Fn::Cidr", "!FindInMap": "Fn::FindInMap",
	"!GetAtt": "Fn::GetAtt", "!GetAZs": "Fn::GetAZs", "!ImportValue": "Fn::ImportValue",
	"!Join": "Fn::Join", "!Select": "Fn::Select", "!Split": "Fn::Split", "!Sub": "Fn::Sub",
	"!Transform": "Fn::Transform", "!And": "Fn::And", "!Equals": "Fn::Equals", "!If": "Fn::If",
	"!Not": "Fn::Not", "!Or": "Fn::Or", "!Condition": "Condition", "!Ref": "Ref",
}

// cfnValue turns a YAML node of a template into plain Go values (map[string]any, []any,
// string, bool, int, float64, nil), with every short-form function (!Ref, !Sub, !GetAtt …)
// rewritten to its JSON form ({"Ref": …}, {"Fn::Sub": …}), as CloudFormation reads it.
func cfnValue(n *yaml.Node) (any, error) {
	if n.Kind == yaml.DocumentNode {
		return cfnValue(n.Content[0])
	}
	if n.Kind == yaml.AliasNode {
		return cfnValue(n.Alias)
	}
	if fn, ok := shortFunctions[n.Tag]; ok {
		plain := *n
		plain.Tag = ""
		if n.Kind == yaml.ScalarNode {
			plain.Tag = "!!str"
		}
		v, err := cfnValue(&plain)
		if err != nil {
			return nil, err
		}
		if fn == "Fn::GetAtt" {
			if s, ok := v.(string); ok {
				res, attr, _ := strings.Cut(s, ".")
				v = []any{res, attr}
			}
		}
		return map[string]any{fn: v}, nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return nil, fmt.Errorf("line %d: unknown tag %s", n.Line, n.Tag)
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			v, err := cfnValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			v, err := cfnValue(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	default:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
}

// template is a parsed template: its top-level sections as plain values.
type template struct {
	path      string
	Resources map[string]map[string]any
	raw       map[string]any
}

func loadTemplate(t *testing.T, path string) template {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	v, err := cfnValue(&root)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	raw, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: not a mapping", path)
	}
	tpl := template{path: filepath.Base(path), raw: raw, Resources: map[string]map[string]any{}}
	res, _ := raw["Resources"].(map[string]any)
	for name, r := range res {
		m, ok := r.(map[string]any)
		if !ok {
			t.Fatalf("%s: resource %s is not a mapping", path, name)
		}
		tpl.Resources[name] = m
	}
	return tpl
}

// ofType returns the names of the template's resources of type typ, sorted.
func (tpl template) ofType(typ string) []string {
	var names []string
	for name, r := range tpl.Resources {
		if r["Type"] == typ {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// props returns a resource's Properties.
func (tpl template) props(name string) map[string]any {
	p, _ := tpl.Resources[name]["Properties"].(map[string]any)
	return p
}

// list returns v as a list: a single value becomes a list of one.
func list(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{x}
	}
}

// dig follows keys through nested maps; nil when a key is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
