package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

// conn is one measured connection of either protocol.
type conn interface {
	send(text string)
	close()
}

// recvFunc is called for every message a connection receives.
type recvFunc func(text string, at time.Time)

// dialer creates connections; target is where new connections go: a TCP
// address, or "unix:" and a socket path (the wave mode switches it like nginx
// would).
type dialer struct {
	o          options
	target     atomic.Pointer[string]
	dialErrors atomic.Int64
	chats      []*chatclient.Client
	mu         sync.Mutex
}

func newDialer(o options, addr string) *dialer {
	d := &dialer{o: o}
	d.target.Store(&addr)
	return d
}

func (d *dialer) wsDialer() *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024, WriteBufferSize: 1024,
		NetDialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			t := *d.target.Load()
			if path, ok := strings.CutPrefix(t, "unix:"); ok {
				return (&net.Dialer{}).DialContext(ctx, "unix", path)
			}
			return (&net.Dialer{}).DialContext(ctx, network, t)
		},
	}
}

// connect opens n connections, dialPar at a time, and returns them when all
// are connected (or ctx ends).
func (d *dialer) connect(ctx context.Context, n int, recv func(i int) recvFunc) ([]conn, error) {
	conns := make([]conn, n)
	sem := make(chan struct{}, d.o.dialPar)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := d.open(ctx, i, recv(i))
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			conns[i] = c
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return conns, *p
	}
	return conns, nil
}

func (d *dialer) open(ctx context.Context, i int, recv recvFunc) (conn, error) {
	if d.o.proto == "gorilla" {
		return d.openGorilla(ctx, recv)
	}
	if d.o.lite {
		return d.openLite(ctx, i, recv)
	}
	room := fmt.Sprintf("load-%d", i%d.o.rooms)
	c := chatclient.New(chatclient.Config{
		URL: "ws://127.0.0.1/ws", Room: room, Name: fmt.Sprintf("u%d", i), Dialer: d.wsDialer(), Forget: true, Move: d.o.move,
		OnMsg: func(m chatclient.Msg, at time.Time) {
			if recv != nil {
				recv(m.Text, at)
			}
		},
	})
	d.mu.Lock()
	d.chats = append(d.chats, c)
	d.mu.Unlock()
	go func() { _ = c.Run(ctx) }()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitFor(wctx, func(s chatclient.Snapshot) bool { return s.Live }); err != nil {
		return nil, fmt.Errorf("client %d: %w", i, err)
	}
	return chatConn{c}, nil
}

type chatConn struct{ c *chatclient.Client }

func (c chatConn) send(text string) { c.c.Send(text, 0.5, 0.5) }
func (c chatConn) close()           {}

// gorillaConn speaks the example's protocol: text frames, several messages
// per frame separated by newlines.
type gorillaConn struct {
	ws *websocket.Conn
	mu sync.Mutex
}

func (d *dialer) openGorilla(ctx context.Context, recv recvFunc) (conn, error) {
	ws, _, err := d.wsDialer().DialContext(ctx, "ws://127.0.0.1/ws", nil)
	if err != nil {
		d.dialErrors.Add(1)
		return nil, fmt.Errorf("dial: %w", err)
	}
	g := &gorillaConn{ws: ws}
	go func() {
		var buf bytes.Buffer
		for {
			data, err := readFrame(ws, &buf)
			if err != nil {
				return
			}
			at := time.Now()
			if recv == nil {
				continue
			}
			for line := range bytes.SplitSeq(data, []byte{'\n'}) {
				recv(string(line), at)
			}
		}
	}()
	return g, nil
}

func (g *gorillaConn) send(text string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = g.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = g.ws.WriteMessage(websocket.TextMessage, []byte(strings.TrimSpace(text)))
}

func (g *gorillaConn) close() { _ = g.ws.Close() }

// handshakeErrors sums failed dials over all connections.
func (d *dialer) handshakeErrors() int64 {
	n := d.dialErrors.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.chats {
		n += int64(c.Snapshot().DialErrors)
	}
	return n
}

// liteConn speaks our protocol with as little client-side work as the
// gorilla client does (no JSON decoding of received frames), so fan-out
// numbers measure the server, not the load tool's JSON decoder.
type liteConn struct {
	ws   *websocket.Conn
	mu   sync.Mutex
	next int
}

var textMark = []byte(`"text":"`)

func (d *dialer) openLite(ctx context.Context, i int, recv recvFunc) (conn, error) {
	u := fmt.Sprintf("ws://127.0.0.1/ws?room=load-%d", i%d.o.rooms)
	ws, _, err := d.wsDialer().DialContext(ctx, u, nil)
	if err != nil {
		d.dialErrors.Add(1)
		return nil, fmt.Errorf("dial: %w", err)
	}
	hello := fmt.Sprintf(`{"t":"hello","name":"u%d","sid":"load-%d"}`, i, i)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(hello)); err != nil {
		ws.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	for { // welcome, replay, resumed
		_, data, err := ws.ReadMessage()
		if err != nil {
			ws.Close()
			return nil, fmt.Errorf("welcome: %w", err)
		}
		if bytes.Contains(data, []byte(`"t":"resumed"`)) {
			break
		}
	}
	go func() {
		var buf bytes.Buffer
		for {
			data, err := readFrame(ws, &buf)
			if err != nil {
				return
			}
			at := time.Now()
			if recv == nil || !bytes.HasPrefix(data, []byte(`{"t":"msg"`)) {
				continue
			}
			_, rest, ok := bytes.Cut(data, textMark)
			if !ok {
				continue
			}
			text, _, _ := bytes.Cut(rest, []byte{'"'})
			recv(string(text), at)
		}
	}()
	return &liteConn{ws: ws}, nil
}

func (l *liteConn) send(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	_ = l.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = l.ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"t":"send","cid":"c%d","text":%q,"x":0.5,"y":0.5}`, l.next, text))
}

func (l *liteConn) close() { _ = l.ws.Close() }

// readFrame reads one message into buf, reusing its memory: both protocols'
// receivers use it, so neither pays for garbage the other does not.
func readFrame(ws *websocket.Conn, buf *bytes.Buffer) ([]byte, error) {
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
