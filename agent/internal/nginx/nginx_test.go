package nginx

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	nginxtemplates "github.com/mywebchat/mywebchat/nginx-templates"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name string
		site Site
	}{
		{"placeholder", Site{App: "mywebchat"}},
		{"blue", Site{App: "mywebchat", Color: "blue", Release: "20261123T050000Z-abcd", Servers: []string{"127.0.0.1:8081"}, Backups: []string{"127.0.0.1:8082"}}},
		{"green", Site{App: "mywebchat", Color: "green", Release: "r2", Servers: []string{"127.0.0.1:8082"}, Backups: []string{"127.0.0.1:8081"}}},
		{"blue-socket", Site{App: "mywebchat", Color: "blue", Release: "r3", Servers: []string{"unix:/var/lib/deploy-agent/sockets/mywebchat/blue.sock"}, Backups: []string{"unix:/var/lib/deploy-agent/sockets/mywebchat/green.sock"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, tt.site)
			if err != nil {
				t.Fatal(err)
			}
			again, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, tt.site)
			if err != nil || !bytes.Equal(got, again) {
				t.Fatalf("render is not idempotent: %q vs %q (%v)", got, again, err)
			}
			golden := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("render %s:\ngot:\n%s\nwant:\n%s", tt.name, got, want)
			}
			wantPorts := map[string][]int{"placeholder": {1}, "blue": {8081}, "green": {8082}}[tt.name]
			if gotPorts := ServedPorts(got); !slices.Equal(gotPorts, wantPorts) {
				t.Errorf("ServedPorts = %v, want %v", gotPorts, wantPorts)
			}
			// The backup (the other color) is never the served one.
			wantSockets := map[string][]string{"blue-socket": {"/var/lib/deploy-agent/sockets/mywebchat/blue.sock"}}[tt.name]
			if gotSockets := ServedSockets(got); !slices.Equal(gotSockets, wantSockets) {
				t.Errorf("ServedSockets = %v, want %v", gotSockets, wantSockets)
			}
		})
	}
}

func TestRenderRejectsUnsafeValues(t *testing.T) {
	for _, v := range []string{"a;b", "a\nb", "a{", "}", "a#b", `a"b`, "a'b", "a b", "$x"} {
		for _, site := range []Site{
			{App: v},
			{App: "x", Color: v},
			{App: "x", Release: v},
			{App: "x", Servers: []string{"127.0.0.1:8081" + v}},
			{App: "x", Servers: []string{"127.0.0.1:8081"}, Backups: []string{"127.0.0.1:8082" + v}},
		} {
			if _, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, site); !errors.Is(err, ErrInvalidSite) {
				t.Errorf("Render(%+v) = %v, want ErrInvalidSite", site, err)
			}
		}
	}
	if _, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, Site{App: "x", Servers: []string{"127.0.0.1:99999"}}); !errors.Is(err, ErrInvalidSite) {
		t.Errorf("port 99999 accepted: %v", err)
	}
	for _, srv := range []string{"unix:relative.sock", "unix:/a/b", "unix:/a/../b.sock", "unix:/a b.sock", "unix:/a;b.sock", "unix:/a.sock;"} {
		if _, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, Site{App: "x", Servers: []string{srv}}); !errors.Is(err, ErrInvalidSite) {
			t.Errorf("server %q accepted: %v", srv, err)
		}
	}
}

func TestServedSockets(t *testing.T) {
	b, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, Site{App: "x", Color: "green", Servers: []string{"unix:/s/x/green.sock"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := ServedSockets(b); len(got) != 1 || got[0] != "/s/x/green.sock" {
		t.Errorf("ServedSockets = %q, want [/s/x/green.sock]", got)
	}
	if got := ServedPorts(b); len(got) != 0 {
		t.Errorf("ServedPorts of a socket upstream = %v, want none", got)
	}
}

func TestBackupServers(t *testing.T) {
	b, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, Site{App: "x", Color: "green",
		Servers: []string{"unix:/s/x/green.sock"}, Backups: []string{"unix:/s/x/blue.sock", "127.0.0.1:8081"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := BackupServers(b); !slices.Equal(got, []string{"unix:/s/x/blue.sock", "127.0.0.1:8081"}) {
		t.Errorf("BackupServers = %q, want the two backups", got)
	}
	placeholder, err := Render(nginxtemplates.FS, nginxtemplates.Upstream, Site{App: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if got := BackupServers(placeholder); len(got) != 0 {
		t.Errorf("BackupServers of the placeholder = %q, want none", got)
	}
	// A hand-written file: "backup" as a parameter only, never inside a name.
	hand := []byte("upstream chat {\n  server 127.0.0.1:8081 max_fails=0;\n  server unix:/s/backup.sock;\n  server 127.0.0.1:8082 weight=1 backup;\n}\n")
	if got := BackupServers(hand); !slices.Equal(got, []string{"127.0.0.1:8082"}) {
		t.Errorf("BackupServers of %q = %q, want [127.0.0.1:8082]", hand, got)
	}
}

func TestRenderBrokenTemplates(t *testing.T) {
	fsys := fstest.MapFS{
		"parse.tmpl":   {Data: []byte("upstream chat { {{.Nope")},
		"missing.tmpl": {Data: []byte("upstream chat { {{.Nope}} }")},
		"other.tmpl":   {Data: []byte("server { }")},
	}
	for _, name := range []string{"parse.tmpl", "missing.tmpl", "other.tmpl", "absent.tmpl"} {
		if _, err := Render(fsys, name, Site{App: "x"}); !errors.Is(err, ErrTemplate) {
			t.Errorf("Render(%s) = %v, want ErrTemplate", name, err)
		}
	}
}

// recorder counts test and reload calls and fails them on demand.
type recorder struct {
	tests, reloads       int
	failTest, failReload bool
	seenOnTest           []string
	output               string
}

func (r *recorder) controller(dir string) *Controller {
	r.output = filepath.Join(dir, "nginx", "upstream.conf")
	return &Controller{
		Output: r.output,
		Test: func(context.Context) error {
			r.tests++
			b, _ := os.ReadFile(r.output)
			r.seenOnTest = append(r.seenOnTest, string(b))
			if r.failTest {
				return errors.New("emerg: bad")
			}
			return nil
		},
		Reload: func(context.Context) error {
			r.reloads++
			if r.failReload {
				return errors.New("no nginx")
			}
			return nil
		},
	}
}

func readOrEmpty(p string) string { b, _ := os.ReadFile(p); return string(b) }

func TestApply(t *testing.T) {
	ctx := context.Background()
	r := &recorder{}
	c := r.controller(t.TempDir())

	ch, err := c.Apply(ctx, []byte("A"))
	if err != nil || !ch.Changed {
		t.Fatalf("first Apply = %+v, %v", ch, err)
	}
	if r.tests != 1 || r.reloads != 1 || r.seenOnTest[0] != "A" {
		t.Errorf("tests=%d reloads=%d seen=%q, want the new file tested then one reload", r.tests, r.reloads, r.seenOnTest)
	}
	ch, err = c.Apply(ctx, []byte("A"))
	if err != nil || ch.Changed || r.reloads != 1 {
		t.Errorf("same bytes: changed=%v reloads=%d err=%v, want no reload", ch.Changed, r.reloads, err)
	}
	ch, err = c.Apply(ctx, []byte("B"))
	if err != nil || !ch.Changed {
		t.Fatal(err)
	}
	if got := readOrEmpty(c.PrevPath()); got != "A" {
		t.Errorf("previous file = %q, want A", got)
	}
	if err := ch.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readOrEmpty(c.Output); got != "A" || r.reloads != 3 {
		t.Errorf("after Restore: file %q reloads %d, want A and 3", got, r.reloads)
	}

	r.failTest = true
	if _, err := c.Apply(ctx, []byte("BROKEN")); !errors.Is(err, ErrTestFailed) {
		t.Errorf("Apply with failing test = %v, want ErrTestFailed", err)
	}
	if got := readOrEmpty(c.Output); got != "A" || r.reloads != 3 {
		t.Errorf("after failed test: file %q reloads %d, want A untouched and no reload", got, r.reloads)
	}

	r.failTest, r.failReload = false, true
	if _, err := c.Apply(ctx, []byte("C")); !errors.Is(err, ErrReloadFailed) {
		t.Errorf("Apply with failing reload = %v, want ErrReloadFailed", err)
	}
	if got := readOrEmpty(c.Output); got != "A" {
		t.Errorf("after failed reload: file %q, want A restored", got)
	}
}

func TestApplyFirstFileFailingTestLeavesNoFile(t *testing.T) {
	r := &recorder{failTest: true}
	c := r.controller(t.TempDir())
	if _, err := c.Apply(context.Background(), []byte("X")); !errors.Is(err, ErrTestFailed) {
		t.Fatalf("Apply = %v, want ErrTestFailed", err)
	}
	if _, err := os.Stat(c.Output); !os.IsNotExist(err) {
		t.Errorf("broken first file left in place: %v", err)
	}
}

// fakeRuntime records container-mode calls.
type fakeRuntime struct {
	code    int
	out     string
	signals []string
}

func (f *fakeRuntime) Exec(_ context.Context, c string, cmd []string) (int, string, error) {
	return f.code, f.out, nil
}
func (f *fakeRuntime) Signal(_ context.Context, c, sig string) error {
	f.signals = append(f.signals, c+":"+sig)
	return nil
}

func TestContainerMode(t *testing.T) {
	rt := &fakeRuntime{code: 1, out: "nginx: [emerg] unexpected \"}\""}
	err := ContainerTest(rt, "ngx")(context.Background())
	if err == nil || !strings.Contains(err.Error(), "emerg") {
		t.Errorf("ContainerTest = %v, want the nginx output in the error", err)
	}
	rt.code = 0
	if err := ContainerTest(rt, "ngx")(context.Background()); err != nil {
		t.Error(err)
	}
	if err := ContainerReload(rt, "ngx")(context.Background()); err != nil || !slices.Equal(rt.signals, []string{"ngx:HUP"}) {
		t.Errorf("ContainerReload: %v, signals %v", err, rt.signals)
	}
}

func TestHostCommand(t *testing.T) {
	if err := HostCommand([]string{"true"})(context.Background()); err != nil {
		t.Error(err)
	}
	err := HostCommand([]string{"sh", "-c", "echo broken >&2; exit 3"})(context.Background())
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("HostCommand = %v, want output in error", err)
	}
}
