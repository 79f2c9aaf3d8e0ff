// Package nginx renders the upstream file from a text/template, validates every value that goes
// into it, and applies it safely: the whole nginx config is tested before the new file stays,
// the previous file is kept, writes are atomic, nginx is reloaded only when the bytes changed,
// and the previous file comes back when anything after the swap fails.
package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/mywebchat/mywebchat/agent/internal/atomicfile"
)

var (
	// ErrInvalidSite marks a value that must not be rendered into nginx config.
	ErrInvalidSite = errors.New("invalid upstream value")
	// ErrTemplate marks a template that does not parse or execute.
	ErrTemplate = errors.New("upstream template")
	// ErrTestFailed marks an nginx config test (nginx -t) that rejected the new file.
	ErrTestFailed = errors.New("nginx config test failed")
	// ErrReloadFailed marks an nginx reload that did not go through.
	ErrReloadFailed = errors.New("nginx reload failed")
)

// Site is what the upstream template sees.
type Site struct {
	// App is the application name (app.name).
	App string
	// Color is the color being served; empty for the placeholder before the first release.
	Color string
	// Release is the deploy id of the served release; empty for the placeholder.
	Release string
	// Servers are the backends, host:port or unix:/absolute/path.sock; none means the placeholder.
	Servers []string
	// Backups are backends in the same forms that nginx tries only when a server fails or answers 503 (the
	// other color: a request that an nginx worker still on the previous upstream sends to the
	// draining old color is answered by the new one). None means no fallback.
	Backups []string
}

// unsafeChars can end a directive, open a block, start a comment or a quoted string in nginx.
const unsafeChars = "\n\r;{}#'\"`\\ \t$"

func checkValue(field, v string) error {
	if strings.ContainsAny(v, unsafeChars) || strings.ContainsRune(v, 0) {
		return fmt.Errorf("%w: %s %q contains a character nginx would interpret", ErrInvalidSite, field, v)
	}
	return nil
}

var (
	serverRE = regexp.MustCompile(`^(127\.0\.0\.1|\[::1\]|[a-z0-9.-]+):([0-9]{1,5})$`)
	// socketServerRE is a unix socket backend: an absolute path of plain characters ending in .sock.
	socketServerRE = regexp.MustCompile(`^unix:(/[A-Za-z0-9._/-]+\.sock)$`)
)

// Validate checks every value of s before it is rendered.
func (s Site) Validate() error {
	for field, v := range map[string]string{"app": s.App, "color": s.Color, "release": s.Release} {
		if err := checkValue(field, v); err != nil {
			return err
		}
	}
	if s.App == "" {
		return fmt.Errorf("%w: app is empty", ErrInvalidSite)
	}
	for _, srv := range slices.Concat(s.Servers, s.Backups) {
		if err := checkValue("server", srv); err != nil {
			return err
		}
		if socketServerRE.MatchString(srv) {
			if strings.Contains(srv, "/../") || strings.HasSuffix(srv, "/..") {
				return fmt.Errorf("%w: server %q is not a clean path", ErrInvalidSite, srv)
			}
			continue
		}
		m := serverRE.FindStringSubmatch(srv)
		if m == nil {
			return fmt.Errorf("%w: server %q is not host:port or unix:/path.sock", ErrInvalidSite, srv)
		}
		if p, _ := strconv.Atoi(m[2]); p < 1 || p > 65535 {
			return fmt.Errorf("%w: server %q has no valid port", ErrInvalidSite, srv)
		}
	}
	return nil
}

// maxTemplateBytes bounds a template file; the upstream template is a few lines.
const maxTemplateBytes = 64 << 10

// Render validates s and executes the template name from fsys with it.
func Render(fsys fs.FS, name string, s Site) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrTemplate, name, err)
	}
	if len(src) > maxTemplateBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTemplate, name, maxTemplateBytes)
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(src))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("upstream chat")) {
		return nil, fmt.Errorf("%w: %s does not define upstream chat", ErrTemplate, name)
	}
	return buf.Bytes(), nil
}

var upstreamPortRE = regexp.MustCompile(`(?m)^\s*server\s+127\.0\.0\.1:([0-9]{1,5})\b([^;\n]*)`)

var backupRE = regexp.MustCompile(`(^|\s)backup(\s|$)`)

// ServedPorts returns the 127.0.0.1 ports an upstream file sends traffic to, leaving out backup
// servers (those only take a request that the served one failed).
func ServedPorts(content []byte) []int {
	var ports []int
	for _, m := range upstreamPortRE.FindAllSubmatch(content, -1) {
		if backupRE.Match(m[2]) {
			continue
		}
		p, _ := strconv.Atoi(string(m[1]))
		ports = append(ports, p)
	}
	return ports
}

var upstreamServerRE = regexp.MustCompile(`(?m)^\s*server\s+([^\s;]+)([^;\n]*)`)

// BackupServers returns the servers an upstream file lists as backup, as written
// (host:port or unix:/path.sock).
func BackupServers(content []byte) []string {
	var servers []string
	for _, m := range upstreamServerRE.FindAllSubmatch(content, -1) {
		if backupRE.Match(m[2]) {
			servers = append(servers, string(m[1]))
		}
	}
	return servers
}

var upstreamSocketRE = regexp.MustCompile(`(?m)^\s*server\s+unix:(/[A-Za-z0-9._/-]+\.sock)\b([^;\n]*)`)

// ServedSockets returns the unix socket paths an upstream file sends traffic to, leaving out
// backup servers.
func ServedSockets(content []byte) []string {
	var paths []string
	for _, m := range upstreamSocketRE.FindAllSubmatch(content, -1) {
		if backupRE.Match(m[2]) {
			continue
		}
		paths = append(paths, string(m[1]))
	}
	return paths
}

// Controller owns the upstream file and tells nginx about it.
type Controller struct {
	// Output is the upstream file that nginx includes.
	Output string
	// Test runs the nginx config test; it must fail when the included file is broken.
	Test func(ctx context.Context) error
	// Reload makes nginx pick up the new file.
	Reload func(ctx context.Context) error
	// Log receives restore failures; nil discards them.
	Log *slog.Logger
}

// Change is one applied upstream file, which can be undone.
type Change struct {
	// Changed is false when the file already had these bytes and nginx was left alone.
	Changed bool
	prev    []byte // nil: there was no file
	c       *Controller
}

// PrevPath is where the previous upstream file is kept.
func (c *Controller) PrevPath() string { return c.Output + ".prev" }

// Current returns the upstream file's bytes, or nil when it does not exist.
func (c *Controller) Current() ([]byte, error) {
	b, err := os.ReadFile(c.Output)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read upstream: %w", err)
	}
	return b, nil
}

// Apply puts content in place: keeps the previous file, swaps atomically, tests the whole
// config, then reloads. On a failed test or reload the previous file is restored (and nginx
// reloaded again when it had been told), so nginx keeps serving what it served.
func (c *Controller) Apply(ctx context.Context, content []byte) (*Change, error) {
	ch, err := c.Stage(ctx, content)
	if err != nil {
		return nil, err
	}
	if err := ch.Commit(ctx); err != nil {
		return nil, err
	}
	return ch, nil
}

// Stage is Apply without the reload: content is in place and the whole config passed its test,
// but nginx, which reads its files only when told, still serves what it served. Commit tells it;
// Discard puts the previous file back. A failed test restores the previous file at once.
func (c *Controller) Stage(ctx context.Context, content []byte) (*Change, error) {
	prev, err := c.Current()
	if err != nil {
		return nil, err
	}
	ch := &Change{prev: prev, c: c}
	if prev != nil && bytes.Equal(prev, content) {
		return ch, nil
	}
	ch.Changed = true
	if err := os.MkdirAll(filepath.Dir(c.Output), 0o755); err != nil {
		return nil, fmt.Errorf("upstream folder: %w", err)
	}
	if prev != nil {
		if err := atomicfile.WriteFile(c.PrevPath(), prev, 0o644); err != nil {
			return nil, fmt.Errorf("keep previous upstream: %w", err)
		}
	}
	if err := atomicfile.WriteFile(c.Output, content, 0o644); err != nil {
		return nil, err
	}
	if err := c.Test(ctx); err != nil {
		if rerr := ch.putBack(); rerr != nil {
			return nil, fmt.Errorf("%w: %w (and restoring the previous file failed: %w)", ErrTestFailed, err, rerr)
		}
		return nil, fmt.Errorf("%w: %w", ErrTestFailed, err)
	}
	return ch, nil
}

// Commit reloads nginx with a staged file; unchanged bytes need no reload. When the reload fails
// the previous file is restored and nginx told again, so it keeps serving what it served.
func (ch *Change) Commit(ctx context.Context) error {
	if !ch.Changed {
		return nil
	}
	c := ch.c
	if err := c.Reload(ctx); err != nil {
		if rerr := ch.putBack(); rerr != nil {
			return fmt.Errorf("%w: %w (and restoring the previous file failed: %w)", ErrReloadFailed, err, rerr)
		}
		// nginx may have taken part of the reload; tell it again about the restored file.
		if ch.prev != nil {
			if rerr := c.Reload(ctx); rerr != nil && c.Log != nil {
				c.Log.Error("reload after restoring upstream", "err", rerr)
			}
		}
		return fmt.Errorf("%w: %w", ErrReloadFailed, err)
	}
	return nil
}

// Previous returns the upstream file that was in place before the change; nil when there was none.
func (ch *Change) Previous() []byte { return ch.prev }

// Discard puts back the file that was in place before Stage, for a change that was never
// committed: nginx was not told about it, so it is not told now either.
func (ch *Change) Discard() error {
	if !ch.Changed {
		return nil
	}
	if err := ch.putBack(); err != nil {
		return fmt.Errorf("discard staged upstream: %w", err)
	}
	return nil
}

func (ch *Change) putBack() error {
	if ch.prev == nil {
		if err := os.Remove(ch.c.Output); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return atomicfile.WriteFile(ch.c.Output, ch.prev, 0o644)
}

// Restore brings back the file that was in place before Apply and reloads nginx.
// It is a no-op when Apply changed nothing or there was no previous file (nginx then keeps
// the file Apply wrote, which is better than none).
func (ch *Change) Restore(ctx context.Context) error {
	if ch == nil || !ch.Changed || ch.prev == nil {
		return nil
	}
	if err := ch.putBack(); err != nil {
		return fmt.Errorf("restore upstream: %w", err)
	}
	if err := ch.c.Test(ctx); err != nil {
		return fmt.Errorf("restore upstream: %w: %w", ErrTestFailed, err)
	}
	if err := ch.c.Reload(ctx); err != nil {
		return fmt.Errorf("restore upstream: %w: %w", ErrReloadFailed, err)
	}
	return nil
}

// TestInstalled runs the config test on the host as it is. On a fresh host the upstream file
// does not exist until `deploy-agent run` writes it, and nginx -t would fail on the missing
// include; then placeholder stands in for it during the test and is taken away afterwards (with
// any folder made for it), so the answer is whether nginx will load once the agent has written
// its file, and the host is left as it was. The stand-in starts with a comment line, so an agent
// that starts meanwhile sees other bytes than its own and replaces the file; a replaced file is
// left alone.
func (c *Controller) TestInstalled(ctx context.Context, placeholder []byte) error {
	cur, err := c.Current()
	if err != nil {
		return err
	}
	if cur != nil {
		return c.Test(ctx)
	}
	made, err := mkdirAllRecorded(filepath.Dir(c.Output))
	defer removeEmpty(made)
	if err != nil {
		return fmt.Errorf("upstream folder: %w", err)
	}
	f, err := os.OpenFile(c.Output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return c.Test(ctx) // written meanwhile: test the real file
	}
	if err != nil {
		return fmt.Errorf("upstream stand-in: %w", err)
	}
	content := append([]byte("# deploy-agent validate: a stand-in while nothing wrote this file yet; removed after the test\n"), placeholder...)
	_, werr := f.Write(content)
	ours, serr := f.Stat()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	defer func() {
		if now, err := os.Stat(c.Output); err == nil && serr == nil && os.SameFile(ours, now) {
			_ = os.Remove(c.Output)
		}
	}()
	if werr != nil {
		return fmt.Errorf("upstream stand-in: %w", werr)
	}
	return c.Test(ctx)
}

// mkdirAllRecorded is os.MkdirAll that returns the folders it made, outermost first.
func mkdirAllRecorded(dir string) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	var made []string
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return made, err
		}
		made = append(made, missing[i])
	}
	return made, nil
}

// removeEmpty removes the folders mkdirAllRecorded made, innermost first, where still empty.
func removeEmpty(made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		_ = os.Remove(made[i])
	}
}
