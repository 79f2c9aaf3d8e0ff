package chatclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeServer is a hand-written stand-in for the chat server: every accepted
// WebSocket is handed to the test, which plays the server's side frame by
// frame. Frames the client sends arrive on the peer's frames channel, pongs
// on its pongs channel.
type fakeServer struct {
	url   string
	peers chan *peer
}

type peer struct {
	conn   *websocket.Conn
	frames chan map[string]any
	pongs  chan string
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	fs := &fakeServer{peers: make(chan *peer, 4)}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		p := &peer{conn: conn, frames: make(chan map[string]any, 64), pongs: make(chan string, 4)}
		conn.SetPongHandler(func(s string) error { p.pongs <- s; return nil })
		go func() {
			defer close(p.frames)
			for {
				_, data, err := conn.ReadMessage()
				if err != nil {
					return
				}
				var f map[string]any
				if json.Unmarshal(data, &f) == nil {
					p.frames <- f
				}
			}
		}()
		fs.peers <- p
	}))
	t.Cleanup(srv.Close)
	fs.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	return fs
}

func (fs *fakeServer) accept(t *testing.T) *peer {
	t.Helper()
	select {
	case p := <-fs.peers:
		t.Cleanup(func() { _ = p.conn.Close() })
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("the client never connected")
		return nil
	}
}

func (p *peer) serve(t *testing.T, frames ...string) {
	t.Helper()
	for _, f := range frames {
		if err := p.conn.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Fatalf("serve %s: %v", f, err)
		}
	}
}

// next returns the client's next frame.
func (p *peer) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case f, ok := <-p.frames:
		if !ok {
			t.Fatal("the client's connection ended")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame from the client")
		return nil
	}
}

func run(t *testing.T, c *Client) {
	t.Helper()
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
}

func waitFor(t *testing.T, c *Client, what string, cond func(Snapshot) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.WaitFor(ctx, cond); err != nil {
		t.Fatalf("%s: %v; state %+v", what, err, c.Snapshot())
	}
}

// join answers the client's hello like a v1 server and returns the hello.
func join(t *testing.T, p *peer, welcome string, rest ...string) map[string]any {
	t.Helper()
	hello := p.next(t)
	if hello["t"] != "hello" {
		t.Fatalf("first frame %v, want hello", hello)
	}
	p.serve(t, append([]string{welcome}, rest...)...)
	return hello
}

func TestHelloOffersMoveOnlyWhenAsked(t *testing.T) {
	for _, move := range []bool{false, true} {
		fs := newFakeServer(t)
		c := New(Config{URL: fs.url, Room: "r", Name: "mina", Move: move})
		run(t, c)
		hello := join(t, fs.accept(t), `{"t":"welcome","epoch":"e1","seq":0,"resume":"reset","color":"blue","version":"v1"}`, `{"t":"resumed","seq":0}`)
		caps, offered := hello["caps"]
		if offered != move || (move && !slices.Equal(caps.([]any), []any{"move"})) {
			t.Errorf("Move=%v: hello %v", move, hello)
		}
	}
}

// TestMove plays a move: hold → held, sends queued and pings answered while
// held, go → the queued sends in order, and the applied seq runs on over the
// same connection without a resumed.
func TestMove(t *testing.T) {
	fs := newFakeServer(t)
	c := New(Config{URL: fs.url, Room: "r", Name: "mina", Move: true})
	run(t, c)
	p := fs.accept(t)
	join(t, p, `{"t":"welcome","epoch":"e1","seq":1,"resume":"reset","color":"blue","version":"v1","online":1}`,
		`{"t":"msg","seq":1,"cid":"z1","from":"zed","text":"one"}`, `{"t":"resumed","seq":1}`)
	waitFor(t, c, "live", func(s Snapshot) bool { return s.Live })

	before := c.Send("before", 0.1, 0.1)
	if f := p.next(t); f["t"] != "send" || f["cid"] != before {
		t.Fatalf("got %v, want the send of %s", f, before)
	}
	p.serve(t, `{"t":"msg","seq":2,"cid":"z2","from":"zed","text":"two"}`, `{"t":"hold"}`)
	if f := p.next(t); f["t"] != "held" {
		t.Fatalf("got %v, want held at once", f)
	}
	waitFor(t, c, "held", func(s Snapshot) bool { return s.Held })
	during := []string{c.Send("during 1", 0.2, 0.2), c.Send("during 2", 0.3, 0.3)}
	// The sends returned: had either been written, it would be on the wire
	// before the pong the client writes for this ping.
	if err := p.conn.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-p.frames:
		t.Fatalf("the client sent %v between held and go", f)
	case got := <-p.pongs:
		if got != "p1" {
			t.Fatalf("pong %q, want p1", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong while held")
	}

	// The new color takes over the same connection.
	p.serve(t, `{"t":"ack","cid":"`+before+`","seq":3}`, `{"t":"go","color":"green","version":"v2"}`,
		`{"t":"msg","seq":3,"cid":"`+before+`","from":"mina","text":"before"}`)
	for i, cid := range during {
		if f := p.next(t); f["t"] != "send" || f["cid"] != cid {
			t.Fatalf("frame %d after go: %v, want the send of %s (queued sends in order)", i, f, cid)
		}
	}
	p.serve(t, `{"t":"ack","cid":"`+during[0]+`","seq":4}`, `{"t":"ack","cid":"`+during[1]+`","seq":5}`,
		`{"t":"msg","seq":4,"cid":"`+during[0]+`","from":"mina","text":"during 1"}`,
		`{"t":"msg","seq":5,"cid":"`+during[1]+`","from":"mina","text":"during 2"}`)
	waitFor(t, c, "all acked", func(s Snapshot) bool { return s.Outbox == 0 && s.LastSeq == 5 })
	c.Send("after", 0.4, 0.4)
	if f := p.next(t); f["t"] != "send" || f["text"] != "after" {
		t.Fatalf("got %v, want a send straight away after go", f)
	}

	s := c.Snapshot()
	var seqs []uint64
	for _, m := range s.Applied {
		seqs = append(seqs, m.Seq)
	}
	if !slices.Equal(seqs, []uint64{1, 2, 3, 4, 5}) || s.Dupes != 0 {
		t.Errorf("applied %v with %d dupes, want 1..5 and none", seqs, s.Dupes)
	}
	if len(s.Welcomes) != 1 || len(s.Closes) != 0 || s.Held {
		t.Errorf("welcomes %d closes %v held %v, want one welcome, no close, not held", len(s.Welcomes), s.Closes, s.Held)
	}
	if len(s.Moves) != 1 || s.Moves[0].Color != "green" || s.Moves[0].Version != "v2" || s.Moves[0].Go.Before(s.Moves[0].Hold) {
		t.Errorf("moves %+v, want one to green v2", s.Moves)
	}
	if s.Color != "green" || s.Version != "v2" {
		t.Errorf("serving color %s %s, want green v2", s.Color, s.Version)
	}
}

// TestMoveWithoutGoResumes: a move whose go never comes ends the connection;
// the client resumes on a new one and sends what it queued.
func TestMoveWithoutGoResumes(t *testing.T) {
	fs := newFakeServer(t)
	c := New(Config{URL: fs.url, Room: "r", Name: "mina", Move: true})
	c.moveWait = 200 * time.Millisecond
	run(t, c)
	p := fs.accept(t)
	join(t, p, `{"t":"welcome","epoch":"e1","seq":1,"resume":"reset","color":"blue","version":"v1"}`,
		`{"t":"msg","seq":1,"cid":"z1","from":"zed","text":"one"}`, `{"t":"resumed","seq":1}`, `{"t":"hold"}`)
	if f := p.next(t); f["t"] != "held" {
		t.Fatalf("got %v, want held", f)
	}
	queued := c.Send("queued", 0.5, 0.5)
	p2 := fs.accept(t)
	hello := join(t, p2, `{"t":"welcome","epoch":"e1","seq":1,"resume":"ok","color":"green","version":"v2"}`, `{"t":"resumed","seq":1}`)
	if hello["epoch"] != "e1" || hello["last_seq"] != float64(1) {
		t.Fatalf("hello %v, want a resume from e1/1", hello)
	}
	if f := p2.next(t); f["t"] != "send" || f["cid"] != queued {
		t.Fatalf("got %v, want the queued send", f)
	}
	if s := c.Snapshot(); len(s.Moves) != 0 || s.Held {
		t.Fatalf("moves %+v held %v, want no completed move and not held", s.Moves, s.Held)
	}
}

// TestHoldIgnoredWithoutMove: a v1 client does not take part in a move.
func TestHoldIgnoredWithoutMove(t *testing.T) {
	fs := newFakeServer(t)
	c := New(Config{URL: fs.url, Room: "r", Name: "mina"})
	run(t, c)
	p := fs.accept(t)
	join(t, p, `{"t":"welcome","epoch":"e1","seq":0,"resume":"reset"}`, `{"t":"resumed","seq":0}`, `{"t":"hold"}`)
	waitFor(t, c, "live", func(s Snapshot) bool { return s.Live })
	cid := c.Send("x", 0, 0)
	if f := p.next(t); f["t"] != "send" || f["cid"] != cid {
		t.Fatalf("got %v, want the send (no held from a client without move)", f)
	}
}

// TestMoveResendsRefusedSends: a send the old color refused (draining, as it
// does from the start of its drain) is sent on go, not left to a retry that
// may fall due while held and so never go out.
func TestMoveResendsRefusedSends(t *testing.T) {
	fs := newFakeServer(t)
	c := New(Config{URL: fs.url, Room: "r", Name: "mina", Move: true})
	run(t, c)
	p := fs.accept(t)
	join(t, p, `{"t":"welcome","epoch":"e1","seq":0,"resume":"reset","color":"blue","version":"v1"}`, `{"t":"resumed","seq":0}`)
	waitFor(t, c, "live", func(s Snapshot) bool { return s.Live })
	cid := c.Send("refused", 0.5, 0.5)
	if f := p.next(t); f["cid"] != cid {
		t.Fatalf("got %v, want the send", f)
	}
	// A retry far off: only go can send it in time.
	p.serve(t, `{"t":"error","code":"draining","cid":"`+cid+`","retry_ms":60000}`, `{"t":"hold"}`)
	if f := p.next(t); f["t"] != "held" {
		t.Fatalf("got %v, want held", f)
	}
	p.serve(t, `{"t":"go","color":"green","version":"v2"}`)
	if f := p.next(t); f["t"] != "send" || f["cid"] != cid {
		t.Fatalf("got %v, want the refused send again after go", f)
	}
}
