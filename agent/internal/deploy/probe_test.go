package deploy

import (
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

func TestHTTPProbeOverUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "blue.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok","color":"blue"}`))
	}))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	code, body, err := HTTPProbe(t.Context(), "unix:"+sock+":/healthz", time.Second)
	if err != nil || code != 200 || string(body) != `{"status":"ok","color":"blue"}` {
		t.Fatalf("probe = %d %q %v, want 200 and blue's answer", code, body, err)
	}
	if code, _, err := HTTPProbe(t.Context(), "unix:"+sock+":/nope", time.Second); err != nil || code != 404 {
		t.Fatalf("probe of another path = %d %v, want 404", code, err)
	}
	if _, _, err := HTTPProbe(t.Context(), "unix:"+filepath.Join(t.TempDir(), "gone.sock")+":/healthz", time.Second); err == nil {
		t.Fatal("probe of a missing socket succeeded")
	}
	if _, _, err := HTTPProbe(t.Context(), "unix:/no/suffix:/healthz", time.Second); err == nil {
		t.Fatal("probe of a malformed unix target succeeded")
	}
}
