package chat

import (
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestKeepaliveDefaults(t *testing.T) {
	// docs/protocol.md: "the server pings every 25 s and drops a connection silent for 60 s".
	h := NewHandler(NewHub(Config{}), HandlerConfig{})
	if h.pingPeriod != 25*time.Second {
		t.Errorf("got ping period %v, want 25s", h.pingPeriod)
	}
	if h.pongWait != 60*time.Second {
		t.Errorf("got pong wait %v, want 60s", h.pongWait)
	}
}

// keepalivePeer is a raw client that sends nothing after its hello but,
// optionally, pongs; it counts the server's pings.
type keepalivePeer struct {
	pings    atomic.Int64
	helloAt  time.Time  // when the hello was sent
	closedAt time.Time  // when reading failed; set before done receives
	done     chan error // the read loop's final error
}

func startKeepalivePeer(t *testing.T, url, name string, answerPings bool) *keepalivePeer {
	t.Helper()
	conn := dial(t, url, nil)
	p := &keepalivePeer{done: make(chan error, 1)}
	conn.SetPingHandler(func(data string) error {
		p.pings.Add(1)
		if !answerPings {
			return nil // silent: gorilla's default handler would answer
		}
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	// No test waits this long; it only keeps a broken server from hanging the test.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	p.helloAt = time.Now()
	frame := `{"t":"hello","name":"` + name + `","sid":"sid-` + name + `"}`
	if err := conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		t.Fatalf("hello: %v", err)
	}
	go func() {
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				p.closedAt = time.Now()
				p.done <- err
				return
			}
		}
	}()
	return p
}

// TestKeepalive checks docs/protocol.md's keepalive with shortened intervals: the
// server pings every pingPeriod, a connection that answers pings (and sends
// nothing else) stays open, and one that stays silent is dropped after pongWait.
func TestKeepalive(t *testing.T) {
	const (
		ping = 50 * time.Millisecond
		wait = 250 * time.Millisecond
	)
	hub := NewHub(Config{History: 10, Color: "blue", Version: "test"})
	h := NewHandler(hub, HandlerConfig{})
	h.pingPeriod, h.pongWait = ping, wait
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.CloseAll(ctx, 10*time.Millisecond)
		srv.Close()
	})
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws?room=ka"

	live := startKeepalivePeer(t, url, "live", true)
	silent := startKeepalivePeer(t, url, "silent", false)

	// The silent peer must be dropped, and not before pongWait (its read
	// deadline starts after the server reads its hello).
	select {
	case err := <-silent.done:
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			t.Fatalf("silent peer: the server never dropped it (%v)", err)
		}
		if got := time.Since(silent.helloAt); got > 6*wait {
			t.Errorf("silent peer dropped after %v, want within %v", got, 6*wait)
		}
		if got := silent.closedAt.Sub(silent.helloAt); got < wait {
			t.Errorf("silent peer dropped after %v, before the %v silence limit", got, wait)
		}
	case <-time.After(6 * wait):
		t.Fatalf("silent peer still connected %v after its hello, want dropped after %v", 6*wait, wait)
	}
	if silent.pings.Load() == 0 {
		t.Errorf("silent peer got no ping before it was dropped")
	}

	// The live peer has sent nothing but pongs; keep it well past several
	// silence limits and check that it stays and is pinged regularly.
	if d := 4*wait - time.Since(live.helloAt); d > 0 {
		time.Sleep(d)
	}
	select {
	case err := <-live.done:
		t.Fatalf("live peer answering pings was dropped: %v (after %d pings)", err, live.pings.Load())
	default:
	}
	// 4*wait is 20 ping periods; expect at least a quarter of them.
	if got, want := live.pings.Load(), int64(4*wait/ping/4); got < want {
		t.Errorf("live peer got %d pings in %v, want at least %d (one per %v)", got, 4*wait, want, ping)
	}
}
