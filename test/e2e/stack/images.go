package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// Images names what a run deploys: two builds of the chat server that differ
// only in version and label (deploys alternate between them), and the fault
// images built from faultapp.
type Images struct {
	Repository    string // e.g. mywebchat/e2e-app
	A, B          string // repository:tag of the two real builds
	NeverHealthy  string // answers /healthz 500 forever
	Crash         string // exits 1 at start
	WrongColor    string // healthy, but reports the other color
	Nginx         string // the nginx image from Dockerfile.nginx
	ForeignImage  string // a local image outside Repository
	GoImage       string // build base for Dockerfile.app
	NginxBaseName string // build base for Dockerfile.nginx
}

// BuildImages builds every image a run needs from the checkout at root. The
// builds reuse the layer cache, so after the first run they take seconds.
func BuildImages(ctx context.Context, root string, im Images, withNginx bool) error {
	if _, err := Docker(ctx, "build", "--network", "host", "-q", "-f", filepath.Join(root, "Dockerfile.app"),
		"--build-arg", "GO_IMAGE="+im.GoImage, "--build-arg", "VERSION=e2e",
		"--label", "mywebchat.e2e.build=a", "-t", im.A, root); err != nil {
		return fmt.Errorf("build %s: %w", im.A, err)
	}
	// The second build differs only in a label, which gives it its own
	// image ID (what the agent deploys by) without a second compile.
	if _, err := buildFrom(ctx, im.A, "LABEL mywebchat.e2e.build=b", im.B); err != nil {
		return err
	}
	if withNginx {
		if _, err := Docker(ctx, "build", "--network", "host", "-q", "-f", filepath.Join(root, "Dockerfile.nginx"),
			"--build-arg", "NGINX_IMAGE="+im.NginxBaseName, "-t", im.Nginx, root); err != nil {
			return fmt.Errorf("build %s: %w", im.Nginx, err)
		}
	}
	return buildFaultImages(ctx, root, im)
}

// buildFaultImages compiles faultapp statically on the host and wraps it in
// three scratch images whose entrypoints select the misbehaviour.
func buildFaultImages(ctx context.Context, root string, im Images) error {
	dir, err := os.MkdirTemp("", "e2e-faultapp-")
	if err != nil {
		return fmt.Errorf("fault images: %w", err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "faultapp")
	cmd := []string{"build", "-trimpath", "-o", bin, "./test/e2e/faultapp"}
	if _, err := runIn(ctx, root, []string{"CGO_ENABLED=0"}, "go", cmd...); err != nil {
		return fmt.Errorf("fault images: %w", err)
	}
	for _, f := range []struct{ tag, mode string }{
		{im.NeverHealthy, "never-healthy"}, {im.Crash, "crash"}, {im.WrongColor, "wrong-color"},
	} {
		df := fmt.Sprintf("FROM scratch\nCOPY faultapp /faultapp\nUSER 65532:65532\nEXPOSE 8080\nENTRYPOINT [\"/faultapp\", \"-mode\", %q]\n", f.mode)
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
			return fmt.Errorf("fault images: %w", err)
		}
		if _, err := Docker(ctx, "build", "-q", "--label", "mywebchat.e2e.fault="+f.mode, "-t", f.tag, dir); err != nil {
			return fmt.Errorf("build %s: %w", f.tag, err)
		}
	}
	if im.ForeignImage != "" {
		if _, err := Docker(ctx, "tag", im.Crash, im.ForeignImage); err != nil {
			return fmt.Errorf("tag foreign image: %w", err)
		}
	}
	return nil
}

// buildFrom builds tag as FROM base plus one Dockerfile line.
func buildFrom(ctx context.Context, base, line, tag string) (string, error) {
	dir, err := os.MkdirTemp("", "e2e-build-")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\n"+line+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	out, err := Docker(ctx, "build", "-q", "-t", tag, dir)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	return out, nil
}
