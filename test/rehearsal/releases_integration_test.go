//go:build integration

package rehearsal

import (
	"os"
	"path/filepath"
	"strings"
)

// release is one push to main as the images job leaves it: both images
// tagged sha-<commit> and latest, and their digests. Here the images are
// loaded into the hosts rather than pulled, so a digest is the image's ID,
// which the agent and mywebchat-nginx-run accept for an image tagged in the
// repository.
type release struct {
	sha      string
	app      string // ghcr.io/OWNER/mywebchat-app@sha256:…
	nginx    string // ghcr.io/OWNER/mywebchat-nginx@sha256:…
	appID    string
	nginxID  string
	pageMark string // what the page says in this release (the page changed when it differs)
}

func (r release) tags() []string {
	return []string{
		"ghcr.io/" + owner + "/mywebchat-app:sha-" + r.sha,
		"ghcr.io/" + owner + "/mywebchat-nginx:sha-" + r.sha,
	}
}

// buildRelease builds a release's images as release.yml does, from this
// checkout: the chat server image with the commit in its labels (the
// compiled server is built once per run and reused), and nginx from
// Dockerfile.nginx with the commit's build args. pageMark, when not empty,
// changes the page (an HTML comment in index.html), as a commit touching
// static/ would.
func (w *world) buildRelease(pageMark string) release {
	return w.buildReleaseWith(pageMark, "")
}

// buildBrokenRelease is a release whose chat server never becomes healthy
// (it exits at once on a flag it does not know), as a bad commit would be.
func (w *world) buildBrokenRelease() release {
	return w.buildReleaseWith("", "ENTRYPOINT [\"/chatserver\", \"-no-such-flag\"]\n")
}

func (w *world) buildReleaseWith(pageMark, appExtra string) release {
	t := w.t
	t.Helper()
	r := release{sha: w.newSHA(), pageMark: pageMark}
	if _, err := runErr(".", nil, "docker", "image", "inspect", appBaseImage); err != nil || !w.appBuilt {
		run(t, w.root, "docker", "build", "--network", "host", "-q", "-f", "Dockerfile.app",
			"--build-arg", "GO_IMAGE="+goImage, "--build-arg", "VERSION=rehearsal", "-t", appBaseImage, ".")
		w.appBuilt = true
	}
	appTag := "ghcr.io/" + owner + "/mywebchat-app"
	df := "FROM " + appBaseImage + "\nLABEL org.opencontainers.image.revision=" + r.sha + " org.opencontainers.image.version=sha-" + r.sha + "\n" + appExtra
	dfPath := filepath.Join(w.dir, "Dockerfile.app-"+r.sha)
	if err := os.WriteFile(dfPath, []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, w.dir, "docker", "build", "-q", "-f", dfPath, "-t", appTag+":sha-"+r.sha, "-t", appTag+":latest", w.dir+"/empty-context")
	// nginx: Dockerfile.nginx on a context holding what it copies.
	ctx := w.nginxContext(pageMark)
	nginxTag := "ghcr.io/" + owner + "/mywebchat-nginx"
	run(t, ctx, "docker", "build", "-q", "-f", "Dockerfile.nginx", "--build-arg", "NGINX_IMAGE="+baseImage,
		"--build-arg", "VERSION=sha-"+r.sha, "--build-arg", "REVISION="+r.sha,
		"-t", nginxTag+":sha-"+r.sha, "-t", nginxTag+":latest", ".")
	r.appID = strings.TrimSpace(run(t, ".", "docker", "image", "inspect", "--format", "{{.Id}}", appTag+":sha-"+r.sha))
	r.nginxID = strings.TrimSpace(run(t, ".", "docker", "image", "inspect", "--format", "{{.Id}}", nginxTag+":sha-"+r.sha))
	r.app = appTag + "@" + r.appID
	r.nginx = nginxTag + "@" + r.nginxID
	t.Cleanup(func() {
		_, _ = runErr(".", nil, "docker", "rmi", appTag+":sha-"+r.sha, nginxTag+":sha-"+r.sha)
	})
	return r
}

// nginxContext is a build context for Dockerfile.nginx: the checkout's
// nginx-templates/ and static/, with the page marked when mark is set.
func (w *world) nginxContext(mark string) string {
	t := w.t
	name := "nginx-context"
	if mark != "" {
		name += "-" + mark
	}
	ctx := filepath.Join(w.dir, name)
	if _, err := os.Stat(ctx); err == nil {
		return ctx
	}
	if err := os.MkdirAll(ctx, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"Dockerfile.nginx", "nginx-templates", "static"} {
		run(t, ".", "cp", "-r", filepath.Join(w.root, rel), filepath.Join(ctx, rel))
	}
	if mark != "" {
		p := filepath.Join(ctx, "static", "index.html")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, append(b, []byte("<!-- "+mark+" -->\n")...), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ctx
}
