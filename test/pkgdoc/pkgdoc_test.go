// Package pkgdoc checks repository-wide conventions that no single package
// can check for itself.
package pkgdoc

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs requires a "// Package x ..." comment (or, for a main
// package, "// Command x ...") in every package, so each says what its role is.
func TestPackageDocs(t *testing.T) {
	root := filepath.Join("..", "..")
	dirs := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = append(dirs[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	if len(dirs) == 0 {
		t.Fatal("found no Go packages; is the test running from test/pkgdoc?")
	}
	for dir, files := range dirs {
		var name string
		documented := false
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatalf("read %s: %v", f, err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("parse %s: %v", f, err)
			}
			name = af.Name.Name
			if af.Doc == nil {
				continue
			}
			text := af.Doc.Text()
			if strings.HasPrefix(text, "Package "+name+" ") ||
				(name == "main" && strings.HasPrefix(text, "Command ")) {
				documented = true
			}
		}
		if !documented {
			if name == "main" {
				t.Errorf("%s: command has no doc comment starting with %q", dir, "Command ")
			} else {
				t.Errorf("%s: package %s has no doc comment starting with %q", dir, name, "Package "+name+" ")
			}
		}
	}
}
