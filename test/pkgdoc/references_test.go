package pkgdoc

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// mdRef is a mention of a Markdown file by path, as in comments, docs and units.
	mdRef = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)
	// repoURL is a link into this repository's main branch (the units' Documentation=).
	repoURL = regexp.MustCompile(`github\.com/mywebchat/mywebchat/blob/main/([A-Za-z0-9_./-]+)`)
	anyURL  = regexp.MustCompile(`[a-z]+://\S+`)
	// outside names places that exist only on the machine the repository was written on.
	outside = regexp.MustCompile(`/work/|\.\./shared/|shared/[A-Z]+\.md`)
)

// TestReferencesStayInside requires every Markdown file that the repository's text names, and
// every link into the repository, to exist in it, and nothing to point outside it: the
// repository documents itself (docs/), so a reader never meets a file they cannot open.
func TestReferencesStayInside(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "artifacts":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".js", ".mjs", ".sh", ".service", ".yaml", ".yml", ".conf", ".tmpl", ".html", ".css":
		default:
			if d.Name() != "Makefile" {
				return nil
			}
		}
		if strings.HasSuffix(path, "references_test.go") {
			return nil // this file names the patterns it looks for
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		rel, _ := filepath.Rel(root, path)
		for i, line := range strings.Split(string(b), "\n") {
			if m := outside.FindString(line); m != "" {
				t.Errorf("%s:%d points outside the repository (%q): %s", rel, i+1, m, strings.TrimSpace(line))
			}
			// A URL is checked below (this repository's) or not at all (another site's).
			for _, ref := range mdRef.FindAllString(anyURL.ReplaceAllString(line, ""), -1) {
				if !exists(root, filepath.Dir(path), ref) {
					t.Errorf("%s:%d names %s, which is not in the repository", rel, i+1, ref)
				}
			}
			for _, m := range repoURL.FindAllStringSubmatch(line, -1) {
				if !exists(root, root, m[1]) {
					t.Errorf("%s:%d links %s, which is not in the repository", rel, i+1, m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d files; is the test running from test/pkgdoc?", checked)
	}
}

// exists reports whether ref names a file relative to the repository root or to dir.
func exists(root, dir, ref string) bool {
	ref = strings.TrimPrefix(ref, "./")
	for _, base := range []string{root, dir} {
		if _, err := os.Stat(filepath.Join(base, ref)); err == nil {
			return true
		}
	}
	return false
}
