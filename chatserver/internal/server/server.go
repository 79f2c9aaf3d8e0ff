// Package server wires the chat server together: configuration, the hub,
// the handover folder, the HTTP endpoints and the drain on shutdown.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
	"github.com/mywebchat/mywebchat/chatserver/internal/handover"
	"github.com/mywebchat/mywebchat/chatserver/internal/move"
)

// closeWindow is the longest spread of the clients' reconnects after a drain
// (docs/protocol.md: "N spread over a short window"); the hub sizes the window
// by the number of connections it closes, so only a large wave gets all of it.
const closeWindow = 1500 * time.Millisecond

// ErrNoRedis means CHAT_REDIS_URL is set but no Redis storage was linked in.
var ErrNoRedis = errors.New("CHAT_REDIS_URL is set but this build has no Redis room storage")

// RemoteFunc connects the hub to shared room storage (CHAT_REDIS_URL). It
// returns the Remote the hub forwards to and a function that stops it.
type RemoteFunc func(ctx context.Context, url string, hub chat.Replica, log *slog.Logger) (chat.Remote, func() error, error)

// Options are the dependencies of Run; zero values are fine.
type Options struct {
	// Redis builds the Remote for CHAT_REDIS_URL; nil means none is available.
	Redis RemoteFunc
	// Listening, when set, is called with the bound address (tests use ":0").
	Listening func(addr net.Addr)
}

// Run serves until ctx is done, then drains and returns nil on a clean drain.
func Run(ctx context.Context, cfg Config, log *slog.Logger, opt Options) error {
	raiseFileLimit(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	hub := chat.NewHub(chat.Config{
		History: cfg.History, Color: cfg.Color, Version: cfg.Version,
		Logger: log, Metrics: chat.NewMetrics(reg),
	})

	var node *handover.Node
	rooms := "local" // where the rooms live: this process, Redis, or the handover folder
	switch {
	case cfg.RedisURL != "":
		if opt.Redis == nil {
			return ErrNoRedis
		}
		remote, stop, err := opt.Redis(ctx, cfg.RedisURL, hub.Replica(), log)
		if err != nil {
			return fmt.Errorf("redis rooms: %w", err)
		}
		defer func() {
			if err := stop(); err != nil {
				log.Warn("stop redis rooms", "err", err)
			}
		}()
		hub.Replica().SetRemote(remote)
		rooms = "redis"
	case cfg.HandoverDir != "":
		n, err := handover.Start(handover.Config{
			Dir: cfg.HandoverDir, Source: hub.Authority(), Replica: hub.Replica(), Logger: log, Registerer: reg,
		})
		if err != nil {
			return err
		}
		node = n
		defer node.Close()
		rooms = "handover"
	}

	var draining atomic.Bool
	ready := func() bool { return !draining.Load() && (node == nil || node.Ready()) }
	mux := http.NewServeMux()
	wsHandler := chat.NewHandler(hub, chat.HandlerConfig{
		AllowedOrigins: cfg.AllowedOrigins, Accepting: ready, Logger: log,
	})
	mux.Handle("GET /ws", wsHandler)
	// Connections move between processes (docs/protocol.md v1.1) when users
	// arrive over a unix socket and the colors share the handover folder.
	var mv *mover
	if cfg.SocketPath != "" && cfg.HandoverDir != "" {
		m, err := startMover(cfg, wsHandler, log)
		if err != nil {
			return err
		}
		defer m.close()
		mv = m
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		status, code := "ok", http.StatusOK
		switch {
		case draining.Load():
			status, code = "draining", http.StatusServiceUnavailable
		case !ready():
			status, code = "starting", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": status, "color": cfg.Color, "version": cfg.Version})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if cfg.StaticDir != "" {
		mux.Handle("GET /", http.FileServer(http.Dir(cfg.StaticDir)))
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	var uln *net.UnixListener
	if cfg.SocketPath != "" {
		if uln, err = listenUnix(cfg.SocketPath); err != nil {
			ln.Close()
			return err
		}
	}
	if opt.Listening != nil {
		opt.Listening(ln.Addr())
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	if uln != nil {
		go func() { serveErr <- srv.Serve(uln) }()
	}
	log.Info("chat server listening", "addr", ln.Addr().String(), "socket", cfg.SocketPath, "color", cfg.Color, "version", cfg.Version,
		"rooms", rooms)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	return drain(cfg, log, srv, hub, node, mv, &draining)
}

// drain implements the SIGTERM sequence: refuse new work, ask move-capable
// clients to hold, hand the rooms to the successor, move the held
// connections to it, close every other socket with 1012, stop, all within
// DrainTimeout.
func drain(cfg Config, log *slog.Logger, srv *http.Server, hub *chat.Hub, node *handover.Node, mv *mover, draining *atomic.Bool) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	draining.Store(true)
	hub.Drain()
	var holding *chat.Holding
	if mv != nil {
		// Hold first: the clients' held travels while the rooms move.
		holding = hub.Hold()
	}
	log.Info("draining", "connections", hub.Connections(), "holding", holding.Len())
	if node != nil {
		// Leave most of the budget for closing the sockets.
		hctx, hcancel := context.WithTimeout(ctx, cfg.DrainTimeout/3)
		if err := node.Handover(hctx); err != nil {
			log.Warn("handover failed; the successor starts a new epoch", "err", err)
		}
		hcancel()
	}
	if holding.Len() > 0 {
		mv.finish(ctx, holding)
	}
	var errs []error
	if err := hub.CloseAll(ctx, closeWindow); err != nil {
		errs = append(errs, err)
	}
	// A fresh context: ctx may be spent by a slow CloseAll, and Shutdown
	// must still get a moment to stop the listener.
	sctx, scancel := context.WithTimeout(context.Background(), max(100*time.Millisecond, time.Until(deadlineOf(ctx))))
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	}
	log.Info("drained", "ms", time.Since(start).Milliseconds(), "connections", hub.Connections())
	if len(errs) > 0 {
		// Connections that did not close in time are cut by the exit; that
		// is logged, not an error exit, since the drain itself was orderly.
		log.Warn("drain incomplete", "err", errors.Join(errs...))
	}
	return nil
}

func deadlineOf(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d
	}
	return time.Now().Add(10 * time.Second)
}

// raiseFileLimit lifts the soft open-files limit to the hard one: every
// WebSocket is a descriptor.
func raiseFileLimit(log *slog.Logger) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max && l.Max != math.MaxUint64 {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			log.Warn("raise open files limit", "err", err)
		}
	}
}

// mover is this process's end of connection moves: it receives connections
// other processes pass here, and passes its own on at a drain.
type mover struct {
	dir string
	id  string
	ln  *move.Listener
	log *slog.Logger
}

func startMover(cfg Config, h *chat.Handler, log *slog.Logger) (*mover, error) {
	// The handover folder; with Redis rooms nothing else created it.
	if err := os.MkdirAll(cfg.HandoverDir, 0o700); err != nil {
		return nil, fmt.Errorf("move folder: %w", err)
	}
	m := &mover{dir: cfg.HandoverDir, id: move.NewID(), log: log}
	ln, err := move.Listen(m.dir, move.Peer{ID: m.id, Color: cfg.Color, Version: cfg.Version}, h.Adopt, log)
	if err != nil {
		return nil, err
	}
	m.ln = ln
	return m, nil
}

// finish passes the held connections to the other live process, or closes
// them with 1012 when there is none.
func (m *mover) finish(ctx context.Context, holding *chat.Holding) {
	start := time.Now()
	var to chat.Mover
	peer := "none"
	s, err := move.Dial(m.dir, m.id)
	if err != nil {
		m.log.Warn("no process to move connections to; they resume", "err", err)
	} else {
		defer s.Close()
		to, peer = s, s.Peer.Color
	}
	moved := holding.Finish(ctx, to)
	m.log.Info("moved connections", "to", peer, "moved", moved, "held", holding.Len(), "ms", time.Since(start).Milliseconds())
}

func (m *mover) close() {
	if err := m.ln.Close(); err != nil {
		m.log.Warn("close move socket", "err", err)
	}
}
