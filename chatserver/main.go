// Command chatserver serves the MyWebChat WebSocket chat (docs/protocol.md).
// With -healthcheck it instead probes a running server's /healthz and exits
// 0 when healthy: the image's HEALTHCHECK.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mywebchat/mywebchat/chatserver/internal/redisroom"
	"github.com/mywebchat/mywebchat/chatserver/internal/server"
)

func main() {
	healthcheck := flag.Bool("healthcheck", false, "probe /healthz of the server (on CHAT_SOCKET when set, else CHAT_ADDR's port) and exit 0 when healthy")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := server.FromEnv(os.Getenv)
	if err != nil {
		log.Error("config", "err", err)
		os.Exit(2)
	}
	if *healthcheck {
		os.Exit(probe(cfg))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := server.Run(ctx, cfg, log, server.Options{Redis: redisroom.Connector(cfg.History)}); err != nil {
		log.Error("chat server", "err", err)
		os.Exit(1)
	}
}

func probe(cfg server.Config) int {
	url := cfg.HealthURL()
	tr := &http.Transport{}
	if cfg.SocketPath != "" {
		url = "http://chat/healthz"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", cfg.SocketPath)
		}
	}
	c := &http.Client{Timeout: 3 * time.Second, Transport: tr}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}
