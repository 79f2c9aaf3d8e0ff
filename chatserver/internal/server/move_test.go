package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// color runs one chat server (Run) serving on sock, sharing the handover folder.
type color struct {
	name   string
	sock   string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// wait returns Run's result once it has returned.
func (c *color) wait() error {
	c.once.Do(func() { c.err = <-c.done })
	return c.err
}

func startColor(t *testing.T, dir, name string) *color {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &color{name: name, sock: filepath.Join(dir, name+".sock"), cancel: cancel, done: make(chan error, 1)}
	cfg := Config{Addr: "127.0.0.1:0", SocketPath: c.sock, HandoverDir: filepath.Join(dir, "handover"),
		History: 200, DrainTimeout: 5 * time.Second, Color: name, Version: "v-" + name}
	up := make(chan struct{})
	go func() {
		c.done <- Run(ctx, cfg, slog.New(slog.DiscardHandler), Options{Listening: func(net.Addr) { close(up) }})
	}()
	<-up
	t.Cleanup(func() {
		cancel()
		_ = c.wait()
	})
	// Ready: a standby answers 200 once it has the rooms.
	hc := unixClient(c.sock)
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := hc.Get("http://chat/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not healthy: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// frame is any server frame.
type frame struct {
	T       string `json:"t"`
	Seq     uint64 `json:"seq"`
	CID     string `json:"cid"`
	Color   string `json:"color"`
	Resume  string `json:"resume"`
	Version string `json:"version"`
}

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	seen []frame
}

func dialColor(t *testing.T, c *color, name string, caps ...string) *wsClient {
	t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "unix", c.sock)
	}}
	conn, _, err := d.Dial("ws://chat/ws?room=lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hello := map[string]any{"t": "hello", "name": name, "sid": "sid-" + name}
	if len(caps) > 0 {
		hello["caps"] = caps
	}
	if err := conn.WriteJSON(hello); err != nil {
		t.Fatal(err)
	}
	w := &wsClient{t: t, conn: conn}
	w.until("resumed")
	return w
}

// next reads one frame (5 s at most). It reports a frame that is not JSON as an error, so a
// goroutine other than the test's may call it.
func (w *wsClient) next() (frame, error) {
	_ = w.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, data, err := w.conn.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, fmt.Errorf("bad frame %q: %w", data, err)
	}
	w.seen = append(w.seen, f)
	return f, nil
}

// until reads frames up to and including one of type typ.
func (w *wsClient) until(typ string) frame {
	w.t.Helper()
	f, err := w.await(typ)
	if err != nil {
		w.t.Fatalf("%v (seen %+v)", err, w.seen)
	}
	return f
}

// await is until for a goroutine other than the test's: it returns the error.
func (w *wsClient) await(typ string) (frame, error) {
	for {
		f, err := w.next()
		if err != nil {
			return frame{}, fmt.Errorf("waiting for %s: %w", typ, err)
		}
		if f.T == typ {
			return f, nil
		}
	}
}

func (w *wsClient) send(cid string) {
	w.t.Helper()
	if err := w.conn.WriteJSON(map[string]any{"t": "send", "cid": cid, "text": "hi " + cid}); err != nil {
		w.t.Fatal(err)
	}
}

// msgSeqs are the seqs of the msg frames seen.
func (w *wsClient) msgSeqs() []uint64 {
	var out []uint64
	for _, f := range w.seen {
		if f.T == "msg" {
			out = append(out, f.Seq)
		}
	}
	return out
}

// rawHeldAndPing writes held and a ping in one write, as a client may: the
// ping is read from the socket with held but not consumed, so the next
// process must get it and answer it.
func rawHeldAndPing(conn net.Conn) error {
	held := []byte(`{"t":"held"}`)
	ping := []byte("still-here")
	var b []byte
	b = append(b, 0x81, 0x80|byte(len(held)), 0, 0, 0, 0) // text, masked with a zero key
	b = append(b, held...)
	b = append(b, 0x89, 0x80|byte(len(ping)), 0, 0, 0, 0) // ping
	b = append(b, ping...)
	_, err := conn.Write(b)
	return err
}

// TestDrainMovesConnections: blue drains with green running; a client that
// offered move is held, moved and carries on with green on the same socket
// (go, then every msg in order, no gap, no close), the bytes it sent after
// held reach green; a client without the capability, and one that does not
// answer hold, get close 1012 as before.
func TestDrainMovesConnections(t *testing.T) {
	dir := t.TempDir()
	blue := startColor(t, dir, "blue")
	mover := dialColor(t, blue, "mina", "move")
	plain := dialColor(t, blue, "old")
	silent := dialColor(t, blue, "mute", "move")
	for i := 1; i <= 3; i++ {
		mover.send(fmt.Sprintf("a%d", i))
		mover.until("ack")
	}
	green := startColor(t, dir, "green")

	pongs := make(chan string, 1)
	mover.conn.SetPongHandler(func(s string) error { pongs <- s; return nil })
	blue.cancel()
	if f := mover.until("hold"); f.T != "hold" {
		t.Fatal(f)
	}
	heldAt := time.Now()
	if err := rawHeldAndPing(mover.conn.NetConn()); err != nil {
		t.Fatal(err)
	}
	g := mover.until("go")
	took := time.Since(heldAt)
	if g.Color != "green" || g.Version != "v-green" {
		t.Fatalf("go = %+v, want green's color and version", g)
	}
	t.Logf("held → go in %v", took)
	if err := blue.wait(); err != nil {
		t.Fatalf("blue's Run = %v", err)
	}
	// Green answers the ping that was sent in one write with held.
	mover.send("a4")
	ack := mover.until("ack")
	select {
	case p := <-pongs:
		if p != "still-here" {
			t.Fatalf("pong %q, want still-here", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ping sent with held was never answered: unconsumed bytes were lost in the move")
	}
	if ack.Seq != 4 {
		t.Fatalf("ack seq %d after the move, want 4", ack.Seq)
	}
	for len(mover.msgSeqs()) < 4 {
		mover.until("msg")
	}
	seqs := mover.msgSeqs()
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("msg seqs %v: want 1..4 with no gap or duplicate", seqs)
		}
	}
	for _, f := range mover.seen {
		if f.T == "welcome" && f.Color != "blue" || f.T == "resumed" && f.Seq != 0 {
			t.Fatalf("the moved client saw a second welcome or resumed: %+v", mover.seen)
		}
	}

	for _, w := range []*wsClient{plain, silent} {
		var ce *websocket.CloseError
		for {
			_, err := w.next()
			if err == nil {
				continue
			}
			if !errors.As(err, &ce) || ce.Code != websocket.CloseServiceRestart {
				t.Fatalf("got %v, want close 1012", err)
			}
			break
		}
	}
	// Green has the moved connection counted.
	resp, err := unixClient(green.sock).Get("http://chat/metrics")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestDrainWithoutSuccessorFallsBack: a held client of the last process gets
// close 1012 with retry_ms, as before v1.1.
func TestDrainWithoutSuccessorFallsBack(t *testing.T) {
	dir := t.TempDir()
	blue := startColor(t, dir, "blue")
	w := dialColor(t, blue, "mina", "move")
	blue.cancel()
	w.until("hold")
	if err := w.conn.WriteJSON(map[string]string{"t": "held"}); err != nil {
		t.Fatal(err)
	}
	var ce *websocket.CloseError
	for {
		if _, err := w.next(); err != nil {
			if !errors.As(err, &ce) || ce.Code != websocket.CloseServiceRestart {
				t.Fatalf("got %v, want close 1012", err)
			}
			break
		}
	}
	if err := blue.wait(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// TestStandbyDrainMovesBack: a failed verify or a rollback stops the new
// color while the old one keeps serving; the new color's move-capable
// clients move back to the old one the same way.
func TestStandbyDrainMovesBack(t *testing.T) {
	dir := t.TempDir()
	blue := startColor(t, dir, "blue")
	onBlue := dialColor(t, blue, "ana", "move")
	onBlue.send("b1")
	onBlue.until("ack")
	green := startColor(t, dir, "green")
	w := dialColor(t, green, "mina", "move")
	green.cancel()
	w.until("hold")
	if err := w.conn.WriteJSON(map[string]string{"t": "held"}); err != nil {
		t.Fatal(err)
	}
	if g := w.until("go"); g.Color != "blue" {
		t.Fatalf("go = %+v, want blue", g)
	}
	if err := green.wait(); err != nil {
		t.Fatalf("green's Run = %v", err)
	}
	w.send("g1")
	if ack := w.until("ack"); ack.Seq != 2 {
		t.Fatalf("ack seq %d, want 2", ack.Seq)
	}
	for len(w.msgSeqs()) < 2 {
		w.until("msg")
	}
	if seqs := w.msgSeqs(); seqs[0] != 1 || seqs[1] != 2 {
		t.Fatalf("msg seqs %v, want [1 2]", seqs)
	}
}

// TestSilentClientsDelayNoMove: clients that offered move but never answer
// hold wait out HoldWait (1 s) and fall back to 1012; they must not hold up
// the clients that did answer. With many silent clients ahead of them, the
// ones that answered still get go at once.
func TestSilentClientsDelayNoMove(t *testing.T) {
	dir := t.TempDir()
	blue := startColor(t, dir, "blue")
	const silent, movers = 48, 8
	for i := range silent {
		dialColor(t, blue, fmt.Sprintf("mute%d", i), "move")
	}
	var ws []*wsClient
	for i := range movers {
		ws = append(ws, dialColor(t, blue, fmt.Sprintf("mina%d", i), "move"))
	}
	startColor(t, dir, "green")
	blue.cancel()
	took := make(chan time.Duration, movers)
	errs := make(chan error, movers)
	for _, w := range ws {
		go func() {
			if _, err := w.await("hold"); err != nil {
				errs <- err
				return
			}
			heldAt := time.Now()
			if err := w.conn.WriteJSON(map[string]any{"t": "held"}); err != nil {
				errs <- err
				return
			}
			if _, err := w.await("go"); err != nil {
				errs <- err
				return
			}
			took <- time.Since(heldAt)
		}()
	}
	var slowest time.Duration
	for range movers {
		select {
		case d := <-took:
			slowest = max(slowest, d)
		case err := <-errs:
			t.Fatal(err)
		}
	}
	t.Logf("slowest held → go of %d movers behind %d silent clients: %v", movers, silent, slowest)
	if slowest > 500*time.Millisecond {
		t.Errorf("a client that answered held got go %v later: it waited behind clients that never answered (HoldWait %v)", slowest, time.Second)
	}
}
