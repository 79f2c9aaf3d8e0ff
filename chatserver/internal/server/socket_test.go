package server

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// unixClient sends every request to the unix socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// TestRunServesOnSocket: with CHAT_SOCKET the server answers /healthz and
// upgrades /ws on the socket (mode 0666, replacing a stale socket file) as
// well as on CHAT_ADDR.
func TestRunServesOnSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "blue.sock")
	// A socket file left by a killed run is in the way.
	stale, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	cfg := Config{Addr: "127.0.0.1:0", SocketPath: sock, History: 200, DrainTimeout: 5 * time.Second, Color: "blue", Version: "v1"}
	go func() {
		done <- Run(ctx, cfg, slog.New(slog.DiscardHandler), Options{Listening: func(a net.Addr) { addrc <- a }})
	}()
	addr := (<-addrc).String()
	c := unixClient(sock)
	resp, err := c.Get("http://chat/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var hz map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&hz)
	resp.Body.Close()
	if resp.StatusCode != 200 || hz["color"] != "blue" {
		t.Fatalf("healthz on the socket: %d %v", resp.StatusCode, hz)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != socketMode || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("socket file %v (%v), want a socket with mode %v", fi.Mode(), err, os.FileMode(socketMode))
	}
	if resp, err := http.Get("http://" + addr + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz on CHAT_ADDR: %v %v", resp, err)
	}

	d := websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "unix", sock)
	}}
	conn, _, err := d.Dial("ws://chat/ws?room=lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"hello","name":"a","sid":"s"}`))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), `"resumed"`) {
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file after exit: %v, want it removed", err)
	}
}

func TestRunRefusesFileInPlaceOfSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blue.sock")
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(t.Context(), Config{Addr: "127.0.0.1:0", SocketPath: path, History: 200, DrainTimeout: time.Second},
		slog.New(slog.DiscardHandler), Options{})
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("got %v, want an error about the file in the way", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Fatalf("the file in the way was changed: %q", b)
	}
}
