package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

type testServer struct {
	hub *Hub
	url string // ws://…/ws
	srv *httptest.Server
}

func newTestServer(t *testing.T, accepting func() bool) *testServer {
	t.Helper()
	hub := NewHub(Config{History: 100, Color: "blue", Version: "test"})
	srv := httptest.NewServer(NewHandler(hub, HandlerConfig{Accepting: accepting}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.CloseAll(ctx, 10*time.Millisecond)
		srv.Close()
	})
	return &testServer{hub: hub, url: "ws" + strings.TrimPrefix(srv.URL, "http"), srv: srv}
}

func (s *testServer) client(t *testing.T, room, name string) *chatclient.Client {
	t.Helper()
	c := chatclient.New(chatclient.Config{URL: s.url, Room: room, Name: name})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	wait(t, c, func(s chatclient.Snapshot) bool { return s.Live })
	return c
}

func wait(t *testing.T, c *chatclient.Client, cond func(chatclient.Snapshot) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, cond); err != nil {
		t.Fatalf("%v; state %+v", err, c.Snapshot())
	}
}

func TestChatFlow(t *testing.T) {
	s := newTestServer(t, nil)
	a := s.client(t, "r1", "ana")
	b := s.client(t, "r1", "bo")
	other := s.client(t, "r2", "cy")
	for i := range 5 {
		a.Send("from a", 0.1, 0.2)
		b.Send("from b", 0.3, float64(i)/10)
	}
	for _, c := range []*chatclient.Client{a, b} {
		wait(t, c, func(s chatclient.Snapshot) bool { return len(s.Applied) == 10 && s.Outbox == 0 })
		snap := c.Snapshot()
		for i, m := range snap.Applied {
			if m.Seq != uint64(i+1) {
				t.Fatalf("message %d has seq %d", i, m.Seq)
			}
		}
		if snap.Dupes != 0 {
			t.Fatalf("got %d duplicate frames", snap.Dupes)
		}
	}
	if got := a.Snapshot().Applied[0]; got.From != "ana" && got.From != "bo" {
		t.Fatalf("unexpected sender %q", got.From)
	}
	wait(t, a, func(s chatclient.Snapshot) bool { return s.Online == 2 })
	if n := len(other.Snapshot().Applied); n != 0 {
		t.Fatalf("room r2 got %d messages of r1", n)
	}
}

// dial opens a raw WebSocket for the limit tests.
func dial(t *testing.T, url string, hdr http.Header) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func readJSON(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return m
}

// readUntil reads frames until one of type typ arrives.
func readUntil(t *testing.T, conn *websocket.Conn, typ string) map[string]any {
	t.Helper()
	for {
		if m := readJSON(t, conn); m["t"] == typ {
			return m
		}
	}
}

func expectClose(t *testing.T, conn *websocket.Conn, code int) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		ce, ok := err.(*websocket.CloseError)
		if !ok || ce.Code != code {
			t.Fatalf("got %v, want close %d", err, code)
		}
		return ce.Text
	}
}

func hello(t *testing.T, conn *websocket.Conn, extra string) {
	t.Helper()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"hello","name":"t","sid":"sid1"`+extra+`}`)); err != nil {
		t.Fatal(err)
	}
	readUntil(t, conn, "resumed")
}

func TestLimits(t *testing.T) {
	s := newTestServer(t, nil)
	t.Run("frame too big closes 1009", func(t *testing.T) {
		conn := dial(t, s.url, nil)
		hello(t, conn, "")
		big := `{"t":"send","cid":"c","text":"` + strings.Repeat("a", MaxFrameBytes) + `"}`
		_ = conn.WriteMessage(websocket.TextMessage, []byte(big))
		expectClose(t, conn, websocket.CloseMessageTooBig)
	})
	t.Run("invalid UTF-8 closes 1007", func(t *testing.T) {
		conn := dial(t, s.url, nil)
		hello(t, conn, "")
		_ = conn.WriteMessage(websocket.TextMessage, []byte("{\"t\":\"send\",\"cid\":\"c\",\"text\":\"\xff\xfe\"}"))
		expectClose(t, conn, websocket.CloseInvalidFramePayloadData)
	})
	t.Run("text too long", func(t *testing.T) {
		conn := dial(t, s.url, nil)
		hello(t, conn, "")
		_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"send","cid":"c9","text":"`+strings.Repeat("ü", 281)+`"}`))
		m := readUntil(t, conn, "error")
		if m["code"] != CodeTooLong || m["cid"] != "c9" {
			t.Fatalf("got %v, want too_long for c9", m)
		}
	})
	t.Run("unknown type gets an error", func(t *testing.T) {
		conn := dial(t, s.url, nil)
		hello(t, conn, "")
		_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"dance"}`))
		if m := readUntil(t, conn, "error"); m["code"] != CodeBadRequest {
			t.Fatalf("got %v, want bad_request", m)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		conn := dial(t, s.url, nil)
		hello(t, conn, "")
		for i := range 11 {
			_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"send","cid":"r`+string(rune('a'+i))+`","text":"x"}`))
		}
		m := readUntil(t, conn, "error")
		if m["code"] != CodeRateLimited || m["cid"] != "rk" {
			t.Fatalf("got %v, want rate_limited for the 11th", m)
		}
		if r, _ := m["retry_ms"].(float64); r <= 0 || r > 2000 {
			t.Fatalf("retry_ms %v, want in (0, 2000]", m["retry_ms"])
		}
	})
	t.Run("dedupe returns the original ack", func(t *testing.T) {
		conn := dial(t, s.url+"?room=dd", nil)
		hello(t, conn, "")
		_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"send","cid":"same","text":"one"}`))
		first := readUntil(t, conn, "ack")
		conn2 := dial(t, s.url+"?room=dd", nil)
		hello(t, conn2, "")
		_ = conn2.WriteMessage(websocket.TextMessage, []byte(`{"t":"send","cid":"same","text":"one"}`))
		second := readUntil(t, conn2, "ack")
		if first["seq"] != second["seq"] {
			t.Fatalf("resend acked with seq %v, want the original %v", second["seq"], first["seq"])
		}
		if s.hub.rooms.get("dd").seq != 1 {
			t.Fatal("resend was accepted twice")
		}
	})
	t.Run("hello timeout and wrong first frame", func(t *testing.T) {
		conn := dial(t, s.url, nil)
		_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"send","cid":"c","text":"x"}`))
		expectClose(t, conn, websocket.ClosePolicyViolation)
	})
}

func TestHandshakeRefusals(t *testing.T) {
	var accepting atomic.Bool
	accepting.Store(true)
	s := newTestServer(t, accepting.Load)
	httpURL := s.srv.URL + "/ws"
	tests := []struct {
		name   string
		query  string
		origin string
		closed bool
		want   int
	}{
		{"bad room", "?room=Bad!", "", false, http.StatusBadRequest},
		{"foreign origin", "", "https://evil.example", false, http.StatusForbidden},
		{"draining", "", "", true, http.StatusServiceUnavailable},
		{"same origin", "", s.srv.URL, false, http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			accepting.Store(!tt.closed)
			hdr := http.Header{}
			if tt.origin != "" {
				hdr.Set("Origin", tt.origin)
			}
			conn, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(httpURL, "http")+tt.query, hdr)
			if conn != nil {
				_ = conn.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestCloseAllSends1012(t *testing.T) {
	s := newTestServer(t, nil)
	conn := dial(t, s.url, nil)
	hello(t, conn, "")
	s.hub.Drain()
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"t":"send","cid":"late","text":"x"}`))
	if m := readUntil(t, conn, "error"); m["code"] != CodeDraining || m["retry_ms"] == nil {
		t.Fatalf("got %v, want draining with retry_ms", m)
	}
	go func() { _ = s.hub.CloseAll(context.Background(), 500*time.Millisecond) }()
	reason := expectClose(t, conn, websocket.CloseServiceRestart)
	var r struct {
		RetryMS *int64 `json:"retry_ms"`
	}
	// One connection closed: the window is minSpread, not the 500 ms allowed.
	lo, hi := retryFloor.Milliseconds(), (retryFloor + minSpread).Milliseconds()
	if err := json.Unmarshal([]byte(reason), &r); err != nil || r.RetryMS == nil || *r.RetryMS < lo || *r.RetryMS >= hi {
		t.Fatalf("close reason %q, want {\"retry_ms\":N} with N in [%d, %d)", reason, lo, hi)
	}
}

func TestSlowConsumerIsClosed1013(t *testing.T) {
	s := newTestServer(t, nil)
	d := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096) // fill up quickly
		}
		return c, err
	}}
	conn, _, err := d.Dial(s.url+"?room=slow", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	hello(t, conn, "")
	r := s.hub.rooms.get("slow")
	r.mu.Lock()
	var c *client
	for cl := range r.clients {
		c = cl
	}
	r.mu.Unlock()
	if tc, ok := c.bc.Conn.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096) // the server side fills up quickly too
	}
	// The client stops reading; the room keeps talking until its queue overflows.
	text := strings.Repeat("x", MaxTextRunes)
	closing := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closing
	}
	for i := 0; !closing(); i++ {
		if i > 200000 {
			t.Fatal("queue never overflowed")
		}
		if _, _, err := s.hub.Authority().Append("slow", Message{SID: "other", CID: fmt.Sprint(i), From: "a", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	// Read what was buffered, then the close; the deadline slides since the
	// socket buffers may hold megabytes.
	for n := 0; ; n++ {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.CloseTryAgainLater {
			t.Fatalf("after %d frames got %v, want close 1013", n, err)
		}
		return
	}
}

func TestHelloTimeout(t *testing.T) {
	hub := NewHub(Config{})
	srv := httptest.NewServer(NewHandler(hub, HandlerConfig{HelloWait: 200 * time.Millisecond}))
	t.Cleanup(srv.Close)
	conn := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := conn.ReadMessage()
	ce, ok := err.(*websocket.CloseError)
	if !ok || ce.Code != websocket.ClosePolicyViolation {
		t.Fatalf("got %v, want close 1008 after the hello timeout", err)
	}
}

func TestOriginAllowed(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		host    string
		origin  string
		want    bool
	}{
		{"no origin header", nil, "chat.example", "", true},
		{"same host", nil, "chat.example", "https://chat.example", true},
		{"same host other port", nil, "chat.example", "https://chat.example:8443", false},
		{"other host", nil, "chat.example", "https://evil.example", false},
		{"garbage", nil, "chat.example", "::", false},
		{"listed origin", []string{"https://a.example"}, "internal:8080", "https://a.example", true},
		{"listed host", []string{"a.example"}, "internal:8080", "http://a.example", true},
		{"list replaces same host", []string{"a.example"}, "chat.example", "https://chat.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHandler(NewHub(Config{}), HandlerConfig{AllowedOrigins: tt.allowed})
			r := httptest.NewRequest("GET", "http://"+tt.host+"/ws", nil)
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if got := h.originAllowed(r); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBadHelloGetsOneErrorAnd1008(t *testing.T) {
	s := newTestServer(t, nil)
	for _, frame := range []string{
		`{"t":"hello","name":"","sid":"s"}`,
		`{"t":"send","cid":"c","text":"x"}`,
	} {
		conn := dial(t, s.url, nil)
		_ = conn.WriteMessage(websocket.TextMessage, []byte(frame))
		if m := readJSON(t, conn); m["t"] != "error" || m["code"] != CodeBadRequest {
			t.Fatalf("%s: got %v, want error bad_request", frame, m)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, data, err := conn.ReadMessage()
		if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("%s: got %s %v after the error, want close 1008", frame, data, err)
		}
	}
}

// sharedRemote stands in for a store whose rooms span instances: rooms open
// empty under one epoch, and the counts the hub reports are recorded.
type sharedRemote struct {
	hub     *Hub
	mu      sync.Mutex
	reports map[string]int
}

func (r *sharedRemote) Open(_ context.Context, room string) error {
	return r.hub.Replica().Install(room, RoomState{Epoch: "shared"})
}

func (r *sharedRemote) Append(context.Context, string, Message) (uint64, error) {
	return 0, ErrDraining
}

func (r *sharedRemote) ReportPresence(room string, local int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports[room] = local
}

func (r *sharedRemote) reported(room string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reports[room]
}

func TestPresenceCountsOtherInstances(t *testing.T) {
	s := newTestServer(t, nil)
	rem := &sharedRemote{hub: s.hub, reports: map[string]int{}}
	s.hub.Replica().SetRemote(rem)
	a := s.client(t, "r1", "ana")
	waitReported := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for rem.reported("r1") != want {
			if time.Now().After(deadline) {
				t.Fatalf("hub reported %d local members of r1, want %d", rem.reported("r1"), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitReported(1)

	// Three members on other instances: everyone here sees them at once.
	s.hub.Replica().SetOthersOnline("r1", 3)
	wait(t, a, func(s chatclient.Snapshot) bool { return s.Online == 4 })
	b := s.client(t, "r1", "bo")
	if got := b.Snapshot().Welcomes[0].Online; got != 5 {
		t.Errorf("welcome online = %d, want 5 (2 here + 3 elsewhere)", got)
	}
	waitReported(2) // only this instance's own members are reported
	s.hub.Replica().SetOthersOnline("r1", 0)
	wait(t, a, func(s chatclient.Snapshot) bool { return s.Online == 2 })
	s.hub.Replica().SetOthersOnline("not-held", 7) // a room this hub does not hold: ignored
}
