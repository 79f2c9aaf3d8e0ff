package nginx

import (
	"strings"
	"testing"

	nginxtemplates "github.com/mywebchat/mywebchat/nginx-templates"
)

// FuzzRenderNoInjection: whatever values reach Render, either they are refused or the output has
// exactly the structure of a benign site (no extra directive, block or comment smuggled in).
func FuzzRenderNoInjection(f *testing.F) {
	f.Add("mywebchat", "blue", "20261123T050000Z-abcd1234", "127.0.0.1:8081")
	f.Add("x;y", "green}", "r#1", "127.0.0.1:8081;\nserver evil")
	f.Add("a", "", "", "[::1]:1")
	f.Fuzz(func(t *testing.T, app, color, release, server string) {
		got, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, Site{App: app, Color: color, Release: release, Servers: []string{server}})
		if err != nil {
			return
		}
		want, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, Site{App: "a", Color: "b", Release: "c", Servers: []string{"127.0.0.1:1"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{";", "{", "}", "#", "\n", "\"", "'"} {
			if g, w := strings.Count(string(got), tok), strings.Count(string(want), tok); g != w {
				t.Fatalf("values %q %q %q %q changed the count of %q from %d to %d:\n%s", app, color, release, server, tok, w, g, got)
			}
		}
	})
}
