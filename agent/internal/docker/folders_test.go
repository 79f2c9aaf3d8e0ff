package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestGiveFolders checks the calls that make the engine chown: a container that never starts, with
// each folder bound in, an archive whose folder entries carry the owner and mode (extracted as
// they are, without copyUIDGID), and the container's removal.
func TestGiveFolders(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	var create struct {
		Entrypoint []string
		HostConfig struct {
			NetworkMode string
			CapDrop     []string
			Mounts      []struct{ Type, Source, Target string }
		}
	}
	var archive []byte
	var query string
	c := serveEngine(t, func(w http.ResponseWriter, r *http.Request, path string, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, r.Method+" "+path+" "+r.URL.RawQuery)
		switch {
		case path == "/_ping":
			w.Write([]byte("OK"))
		case r.Method == http.MethodDelete && path == "/containers/app-folders":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"No such container"}`))
		case path == "/containers/create":
			if err := json.Unmarshal(b, &create); err != nil || r.URL.Query().Get("name") != "app-folders" {
				http.Error(w, `{"message":"bad create"}`, 400)
				return
			}
			w.Write([]byte(`{"Id":"c1","Warnings":[]}`))
		case r.Method == http.MethodPut && path == "/containers/c1/archive":
			archive, query = b, r.URL.RawQuery
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodDelete && path == "/containers/c1":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, `{"message":"unexpected `+path+`"}`, 500)
		}
	})

	err := c.GiveFolders(context.Background(), "app-folders", "sha256:aaaa", 10001, 10002,
		[]Folder{{Path: "/var/lib/x/handover/app", Mode: 0o700}, {Path: "/var/lib/x/sockets/app", Mode: 0o711}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(create.Entrypoint) != 1 || create.Entrypoint[0] != neverStarted || create.HostConfig.NetworkMode != "none" ||
		len(create.HostConfig.CapDrop) != 1 || create.HostConfig.CapDrop[0] != "ALL" {
		t.Errorf("create = %+v: want the never-started entrypoint, no network, no capabilities", create)
	}
	m := create.HostConfig.Mounts
	if len(m) != 2 || m[0] != (struct{ Type, Source, Target string }{"bind", "/var/lib/x/handover/app", "/f0"}) ||
		m[1] != (struct{ Type, Source, Target string }{"bind", "/var/lib/x/sockets/app", "/f1"}) {
		t.Errorf("mounts = %+v: want each folder bound at /f<i>", m)
	}
	if !strings.Contains(query, "path=%2F") || strings.Contains(query, "copyUIDGID") {
		t.Errorf("archive query %q: want path / without copyUIDGID (which would ignore the headers' owner)", query)
	}
	tr := tar.NewReader(bytes.NewReader(archive))
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("archive: %v", err)
		}
		got = append(got, fmt.Sprintf("%s %c %d:%d:%o", h.Name, h.Typeflag, h.Uid, h.Gid, h.Mode))
	}
	want := []string{"f0/ 5 10001:10002:700", "f1/ 5 10001:10002:711"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("archive entries %q, want %q", got, want)
	}
	if n := len(calls); n == 0 || !strings.HasPrefix(calls[n-1], "DELETE /containers/c1 ") ||
		!strings.Contains(calls[n-1], "force=1") || !strings.Contains(calls[n-1], "v=1") {
		t.Errorf("calls %q: want the container removed last, forced, with its anonymous volumes", calls)
	}
}
