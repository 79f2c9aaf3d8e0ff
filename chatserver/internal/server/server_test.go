package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr bool
		check   func(Config) bool
	}{
		{"defaults", nil, false, func(c Config) bool {
			return c.Addr == ":8080" && c.History == 200 && c.DrainTimeout == 10*time.Second && c.AllowedOrigins == nil
		}},
		{"values", map[string]string{"CHAT_ADDR": "127.0.0.1:9000", "CHAT_HISTORY": "500", "CHAT_DRAIN_TIMEOUT": "3s",
			"CHAT_ALLOWED_ORIGINS": "https://a.example, b.example", "APP_COLOR": "green"}, false, func(c Config) bool {
			return c.Addr == "127.0.0.1:9000" && c.History == 500 && c.DrainTimeout == 3*time.Second &&
				len(c.AllowedOrigins) == 2 && c.AllowedOrigins[1] == "b.example" && c.Color == "green" &&
				c.HealthURL() == "http://127.0.0.1:9000/healthz"
		}},
		{"bad history", map[string]string{"CHAT_HISTORY": "lots"}, true, nil},
		{"history below replay", map[string]string{"CHAT_HISTORY": "10"}, true, nil},
		{"bad drain", map[string]string{"CHAT_DRAIN_TIMEOUT": "-1s"}, true, nil},
		{"bad addr", map[string]string{"CHAT_ADDR": "8080"}, true, nil},
		{"socket", map[string]string{"CHAT_SOCKET": "/sockets/blue.sock"}, false, func(c Config) bool { return c.SocketPath == "/sockets/blue.sock" }},
		{"relative socket", map[string]string{"CHAT_SOCKET": "blue.sock"}, true, nil},
		{"socket path too long", map[string]string{"CHAT_SOCKET": "/" + strings.Repeat("s", 120)}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("got %v, want ErrConfig", err)
				}
				return
			}
			if err != nil || !tt.check(c) {
				t.Fatalf("got %+v, %v", c, err)
			}
		})
	}
}

// TestRunDrainsOnCancel is the shutdown test: Serve in a goroutine, cancel,
// expect 1012 on the open socket, 503 meanwhile and a nil error.
func TestRunDrainsOnCancel(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	cfg := Config{Addr: "127.0.0.1:0", History: 200, DrainTimeout: 5 * time.Second, Color: "blue", Version: "v1"}
	go func() { done <- Run(ctx, cfg, log, Options{Listening: func(a net.Addr) { addrc <- a }}) }()
	addr := (<-addrc).String()

	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	var hz map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&hz)
	resp.Body.Close()
	if resp.StatusCode != 200 || hz["status"] != "ok" || hz["color"] != "blue" || hz["version"] != "v1" {
		t.Fatalf("healthz: %d %v", resp.StatusCode, hz)
	}
	if resp, err := http.Get("http://" + addr + "/metrics"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", resp, err)
	}

	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?room=lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"hello","name":"a","sid":"s"}`))
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), `"resumed"`) {
			break
		}
	}
	began := time.Now()
	cancel()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var closeErr *websocket.CloseError
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			if !errors.As(err, &closeErr) || closeErr.Code != websocket.CloseServiceRestart || !strings.Contains(closeErr.Text, "retry_ms") {
				t.Fatalf("got %v, want close 1012 with retry_ms", err)
			}
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	if d := time.Since(began); d > cfg.DrainTimeout {
		t.Fatalf("drain took %v, longer than %v", d, cfg.DrainTimeout)
	}
	if !strings.Contains(logs.String(), `"msg":"drained"`) {
		t.Fatalf("no drained log in %s", logs.String())
	}
}

func TestRunRefusesRedisWithoutStorage(t *testing.T) {
	err := Run(t.Context(), Config{Addr: "127.0.0.1:0", RedisURL: "redis://127.0.0.1:1/0"}, slog.New(slog.DiscardHandler), Options{})
	if !errors.Is(err, ErrNoRedis) {
		t.Fatalf("got %v, want ErrNoRedis", err)
	}
}
