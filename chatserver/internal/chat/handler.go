package chat

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// appendTimeout bounds one send's round trip to a remote authority.
const appendTimeout = 5 * time.Second

// Handler upgrades GET /ws?room=NAME to a chat connection (docs/protocol.md).
type Handler struct {
	hub     *Hub
	log     *slog.Logger
	origins []string
	// accepting reports whether new connections are welcome; nil means always.
	accepting func() bool
	helloWait time.Duration
	// pingPeriod and pongWait are the keepalive timing: docs/protocol.md's 25 s and
	// 60 s, set by NewHandler. Only tests shorten them.
	pingPeriod, pongWait time.Duration
	upgrader             websocket.Upgrader
}

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// AllowedOrigins lists accepted Origin values (scheme://host[:port] or a
	// bare host[:port]); empty means the request's own host, like a browser's
	// same-origin page.
	AllowedOrigins []string
	// Accepting reports whether new upgrades are accepted (false: HTTP 503,
	// e.g. while draining or before a replica is in sync); nil means always.
	Accepting func() bool
	// Logger receives connection logs; nil discards them.
	Logger *slog.Logger
	// HelloWait is how long a new connection may take to send its hello;
	// zero means the protocol's 10 s.
	HelloWait time.Duration
}

// NewHandler returns the /ws handler for hub.
func NewHandler(hub *Hub, cfg HandlerConfig) *Handler {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{hub: hub, log: log, origins: cfg.AllowedOrigins, accepting: cfg.Accepting, helloWait: cfg.HelloWait,
		pingPeriod: pingPeriod, pongWait: pongWait}
	if h.helloWait <= 0 {
		h.helloWait = helloWait
	}
	h.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// 0: gorilla reads through the buffer hijackWriter hands it
		// (readBufferSize), which a move inspects.
		ReadBufferSize:  0,
		WriteBufferSize: 2048,
		// Write buffers are only held while a frame is being written.
		WriteBufferPool: &sync.Pool{},
		// Checked in ServeHTTP, before the upgrade, so it can be counted.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return h
}

// originAllowed implements the Origin allowlist; a request without Origin is
// not from a browser and cannot be a cross-site hijack.
func (h *Handler) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(h.origins) == 0 {
		return strings.EqualFold(u.Host, r.Host)
	}
	for _, o := range h.origins {
		if strings.EqualFold(o, origin) || strings.EqualFold(o, u.Host) {
			return true
		}
	}
	return false
}

// ServeHTTP upgrades one WebSocket and starts serving it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := h.hub.metrics
	roomName := r.URL.Query().Get("room")
	if roomName == "" {
		roomName = DefaultRoom
	}
	if !ValidRoom(roomName) {
		m.Handshakes.WithLabelValues("bad_room").Inc()
		http.Error(w, "bad room name", http.StatusBadRequest)
		return
	}
	if !h.originAllowed(r) {
		m.Handshakes.WithLabelValues("forbidden_origin").Inc()
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if (h.accepting != nil && !h.accepting()) || h.hub.Draining() {
		m.Handshakes.WithLabelValues("unavailable").Inc()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	hw := &hijackWriter{ResponseWriter: w}
	conn, err := h.upgrader.Upgrade(hw, r, nil)
	if err != nil {
		// Upgrade has answered the request already.
		m.Handshakes.WithLabelValues("upgrade_failed").Inc()
		return
	}
	m.Handshakes.WithLabelValues("ok").Inc()
	c := &client{hub: h.hub, conn: conn, bc: hw.conn, br: hw.br, movable: overUnixSocket(r), log: h.log, roomName: roomName,
		helloWait: h.helloWait, pingPeriod: h.pingPeriod, pongWait: h.pongWait}
	if !h.hub.register(c) {
		// Draining began during the upgrade.
		c.close(CloseServiceRestart, retryReason(100, 1000))
		c.discard()
		c.fail()
		return
	}
	// Serve on a fresh goroutine and let the handler return: net/http then
	// drops its per-connection state (a 4 KiB read buffer and a stack grown
	// by request parsing), which would otherwise stay pinned for the life of
	// every WebSocket.
	go func() {
		defer h.hub.unregister(c)
		c.serve()
	}()
}

// overUnixSocket reports whether r came in over a unix socket (CHAT_SOCKET):
// only such connections can be passed to another process.
func overUnixSocket(r *http.Request) bool {
	a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	return ok && a.Network() == "unix"
}

// cleanup ends a connection's reader: out of its room, the connection closed
// (a moved one was only closed in this process).
func (c *client) cleanup() {
	if c.pinger != nil {
		c.pinger.Stop()
	}
	c.hub.leave(c)
	c.fail()
}

// serve reads the hello, joins the room and runs the read loop; it is the
// only reader.
func (c *client) serve() {
	defer c.cleanup()
	conn := c.conn
	conn.SetReadLimit(MaxFrameBytes)
	_ = conn.SetReadDeadline(time.Now().Add(c.helloWait))
	hello, ok := c.readHello()
	if !ok {
		return
	}
	c.name, c.sid = hello.Name, hello.SID
	c.movable = c.movable && hello.Move
	ctx, cancel := context.WithTimeout(context.Background(), resumeWait+appendTimeout)
	err := c.hub.join(ctx, c, hello)
	cancel()
	if err != nil {
		c.log.Warn("join failed", "room", c.roomName, "err", err)
		c.close(CloseTryAgainLater, retryReason(500, 2000))
		c.discard()
		return
	}
	c.readLoop()
}

// readLoop serves a joined connection's frames until it ends or moves to
// another process.
func (c *client) readLoop() {
	conn := c.conn
	_ = conn.SetReadDeadline(time.Now().Add(c.pongWait))
	conn.SetPongHandler(func(string) error {
		return conn.SetReadDeadline(time.Now().Add(c.pongWait))
	})
	// Spread the first ping so a reconnect wave does not ping in lockstep.
	// Assign before arming, so the timer's goroutine sees the field set.
	c.pinger = time.AfterFunc(time.Hour, c.ping)
	c.pinger.Reset(c.pingPeriod/2 + rand.N(c.pingPeriod/2))
	var limiter rateLimiter
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(c.pongWait))
		f, ok := c.decode(mt, data)
		if !ok {
			return
		}
		if f == nil {
			continue
		}
		if _, isHeld := f.(*Held); isHeld {
			// The client sends nothing more until go: stop reading here,
			// so the bytes after held stay unconsumed for the next owner.
			if c.parkForMove() {
				return
			}
			continue
		}
		send, isSend := f.(*Send)
		if !isSend {
			c.sendError(CodeBadRequest, "", 0)
			continue
		}
		if ok, retry := limiter.allow(time.Now()); !ok {
			c.hub.metrics.Drops.WithLabelValues(CodeRateLimited).Inc()
			c.sendError(CodeRateLimited, send.CID, max(1, retry.Milliseconds()))
			continue
		}
		c.handleSend(send)
	}
}

// readHello reads and validates the first frame; on failure the connection is
// being closed and ok is false.
func (c *client) readHello() (*Hello, bool) {
	mt, data, err := c.conn.ReadMessage()
	if err != nil {
		if ne, isNet := errors.AsType[net.Error](err); isNet && ne.Timeout() {
			c.hub.metrics.Handshakes.WithLabelValues("hello_timeout").Inc()
			msg := websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "hello timeout")
			_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		}
		return nil, false
	}
	f, ok := c.decode(mt, data)
	if !ok {
		return nil, false
	}
	hello, isHello := f.(*Hello)
	if !isHello {
		c.hub.metrics.Handshakes.WithLabelValues("bad_hello").Inc()
		if f != nil { // a valid frame, but not a hello; decode answered invalid ones
			c.sendError(CodeBadRequest, "", 0)
		}
		c.close(websocket.ClosePolicyViolation, "hello expected")
		c.discard()
		return nil, false
	}
	return hello, true
}

// decode validates one frame. ok=false means the connection is being closed;
// a nil frame with ok=true was answered with an error frame.
func (c *client) decode(mt int, data []byte) (any, bool) {
	if mt != websocket.TextMessage {
		c.close(websocket.CloseUnsupportedData, "text frames only")
		c.discard()
		return nil, false
	}
	f, err := Decode(data)
	if errors.Is(err, ErrInvalidUTF8) {
		c.close(websocket.CloseInvalidFramePayloadData, "invalid UTF-8")
		c.discard()
		return nil, false
	}
	if fe, isFE := errors.AsType[*FrameError](err); isFE {
		c.hub.metrics.Drops.WithLabelValues(fe.Code).Inc()
		c.sendError(fe.Code, fe.CID, 0)
		return nil, true
	}
	return f, true
}

// discard reads until the peer answers the close frame or the grace period
// closes the connection.
func (c *client) discard() {
	_ = c.conn.SetReadDeadline(time.Now().Add(closeGrace))
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

func (c *client) handleSend(s *Send) {
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	seq, err := c.hub.append(ctx, c.roomName, Message{
		SID: c.sid, CID: s.CID, From: c.name, Text: s.Text, X: s.X, Y: s.Y,
	})
	if err != nil {
		// Draining, or the authority is changing hands: the client keeps the
		// message queued and retries after retry_ms; dedupe makes that safe.
		if !errors.Is(err, ErrDraining) {
			c.log.Warn("append failed", "room", c.roomName, "err", err)
		}
		c.hub.metrics.Drops.WithLabelValues(CodeDraining).Inc()
		c.sendError(CodeDraining, s.CID, 250+rand.Int64N(750))
		return
	}
	c.enqueue(mustJSON(ackFrame{T: "ack", CID: s.CID, Seq: seq}))
}

func (c *client) sendError(code, cid string, retryMS int64) {
	c.enqueue(mustJSON(errorFrame{T: "error", Code: code, CID: cid, RetryMS: retryMS}))
}
