//go:build integration

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the chat server once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chat-it-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "chatserver")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one chat server process.
type proc struct {
	cmd  *exec.Cmd
	addr string
	log  string
	done chan error
}

func startServer(t *testing.T, color string, env ...string) *proc {
	t.Helper()
	port := freePort(t)
	logPath := filepath.Join(t.TempDir(), color+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t))
	cmd.Env = append(os.Environ(), append([]string{
		fmt.Sprintf("CHAT_ADDR=127.0.0.1:%d", port), "APP_COLOR=" + color, "APP_VERSION=it-" + color,
	}, env...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), log: logPath, done: make(chan error, 1)}
	go func() {
		p.done <- cmd.Wait()
		logf.Close()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", color, b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became healthy", color)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait returns the process's exit error after at most d.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("process did not exit within %v", d)
		return nil
	}
}

// switcher stands in for nginx: it proxies /ws to the current color and can
// be switched, while upgraded connections stay where they are.
type switcher struct {
	target atomic.Pointer[url.URL]
	srv    *httptest.Server
}

func newSwitcher(t *testing.T, addr string) *switcher {
	s := &switcher{}
	s.set(addr)
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(s.target.Load())
		r.Out.Host = r.In.Host
	}}
	s.srv = httptest.NewServer(rp)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *switcher) set(addr string) { s.target.Store(&url.URL{Scheme: "http", Host: addr}) }
func (s *switcher) url() string     { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws" }

func TestDrainSends1012AndExits0(t *testing.T) {
	p := startServer(t, "blue", "CHAT_DRAIN_TIMEOUT=5s")
	var conns []*websocket.Conn
	for i := range 20 {
		c, _, err := websocket.DefaultDialer.Dial("ws://"+p.addr+"/ws?room=drain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"t":"hello","name":"u%d","sid":"s%d"}`, i, i)))
		conns = append(conns, c)
	}
	for _, c := range conns {
		for {
			_, data, err := c.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(data), `"resumed"`) {
				break
			}
		}
	}
	began := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	retries := map[int64]bool{}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, _, err := c.ReadMessage()
			if err == nil {
				continue
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseServiceRestart {
				t.Fatalf("got %v, want close 1012", err)
			}
			var r struct {
				RetryMS *int64 `json:"retry_ms"`
			}
			if json.Unmarshal([]byte(ce.Text), &r) != nil || r.RetryMS == nil {
				t.Fatalf("close reason %q lacks retry_ms", ce.Text)
			}
			retries[*r.RetryMS] = true
			break
		}
	}
	if len(retries) < 5 {
		t.Fatalf("retry_ms not spread: %v", retries)
	}
	if err := p.wait(t, 6*time.Second); err != nil {
		t.Fatalf("exit: %v, want 0", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("drain took %v, want within CHAT_DRAIN_TIMEOUT", d)
	}
}

// runClients starts n clients spread over rooms, each sending a message every
// period until stop is closed.
type fleet struct {
	clients []*chatclient.Client
	rooms   []string
	wg      sync.WaitGroup
	stop    chan struct{}
	sent    atomic.Int64
}

func (f *fleet) add(t *testing.T, url, room string, period time.Duration) {
	i := len(f.clients)
	c := chatclient.New(chatclient.Config{URL: url, Room: room, Name: fmt.Sprintf("u%d", i)})
	f.clients = append(f.clients, c)
	f.rooms = append(f.rooms, room)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.wg.Go(func() { _ = c.Run(ctx) })
	f.wg.Go(func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-f.stop:
				return
			case <-tick.C:
				c.Send(fmt.Sprintf("%s says %d", c.Snapshot().SID, n), 0.5, 0.5)
				f.sent.Add(1)
			}
		}
	})
}

func TestHandoverBetweenProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "handover")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	blue := startServer(t, "blue", "CHAT_HANDOVER_DIR="+dir, "CHAT_DRAIN_TIMEOUT=8s")
	proxy := newSwitcher(t, blue.addr)
	rooms := []string{"r1", "r2", "r3", "r4", "r5"}
	f := &fleet{stop: make(chan struct{})}
	for i := range 40 {
		f.add(t, proxy.url(), rooms[i%len(rooms)], 300*time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)

	// Deploy: the new color starts as standby while blue serves, nginx switches.
	green := startServer(t, "green", "CHAT_HANDOVER_DIR="+dir, "CHAT_DRAIN_TIMEOUT=8s")
	proxy.set(green.addr)
	// New visitors now land on the standby, which forwards their sends.
	for i := range 10 {
		f.add(t, proxy.url(), rooms[i%len(rooms)], 300*time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := blue.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := blue.wait(t, 10*time.Second); err != nil {
		t.Fatalf("blue exit: %v, want 0", err)
	}
	time.Sleep(2 * time.Second)
	close(f.stop)
	t.Logf("sent %d messages", f.sent.Load())

	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// Every outbox drains and every client reaches its room's final seq.
	final := map[string]uint64{}
	for _, c := range f.clients {
		if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.Outbox == 0 && s.Live }); err != nil {
			t.Fatalf("%v: %+v", err, c.Snapshot().Errors)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for i, c := range f.clients {
		if s := c.Snapshot(); s.LastSeq > final[f.rooms[i]] {
			final[f.rooms[i]] = s.LastSeq
		}
	}
	acked := map[string]map[string]bool{} // room → cid
	for i, c := range f.clients {
		room := f.rooms[i]
		if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.LastSeq == final[room] }); err != nil {
			t.Fatal(err)
		}
		s := c.Snapshot()
		if acked[room] == nil {
			acked[room] = map[string]bool{}
		}
		for cid := range s.Acks {
			acked[room][cid] = true
		}
		if i < 40 && len(s.Welcomes) < 2 {
			t.Fatalf("client %d on blue never reconnected: %+v", i, s.Welcomes)
		}
		for _, w := range s.Welcomes[1:] {
			if w.Resume != "ok" {
				t.Fatalf("client %d: welcome %+v after the first, want resume ok", i, w)
			}
		}
		if s.Welcomes[len(s.Welcomes)-1].Color != "green" {
			t.Fatalf("client %d ended on %s, want green", i, s.Welcomes[len(s.Welcomes)-1].Color)
		}
		first := s.Applied[0].Seq
		if s.Welcomes[0].Resume != "reset" || first > 1+uint64(max(0, int(s.Welcomes[0].Seq)-50)) {
			t.Fatalf("client %d: first welcome %+v, first seq %d", i, s.Welcomes[0], first)
		}
		for j, m := range s.Applied {
			if m.Seq != first+uint64(j) || m.Epoch != s.Applied[0].Epoch {
				t.Fatalf("client %d: message %d has seq %d epoch %s, want %d %s", i, j, m.Seq, m.Epoch, first+uint64(j), s.Applied[0].Epoch)
			}
		}
		if s.Applied[len(s.Applied)-1].Seq != final[room] {
			t.Fatalf("client %d: last seq %d, want %d", i, s.Applied[len(s.Applied)-1].Seq, final[room])
		}
	}
	// Nothing lost or doubled: each room's seqs are exactly its acked messages.
	var total int
	for _, room := range rooms {
		if got, want := final[room], uint64(len(acked[room])); got != want {
			t.Fatalf("room %s: final seq %d, but %d distinct messages were acked", room, got, want)
		}
		total += len(acked[room])
	}
	if int64(total) != f.sent.Load() {
		t.Fatalf("%d messages acked, %d sent", total, f.sent.Load())
	}
	b, _ := os.ReadFile(blue.log)
	if !strings.Contains(string(b), "rooms handed to the successor") {
		t.Fatalf("blue did not hand over:\n%s", b)
	}
}

func TestPredecessorKilledStartsNewEpoch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "handover")
	blue := startServer(t, "blue", "CHAT_HANDOVER_DIR="+dir)
	c := chatclient.New(chatclient.Config{URL: "ws://" + blue.addr + "/ws", Room: "k", Name: "k"})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	go func() { _ = c.Run(ctx) }()
	c.Send("before", 0, 0)
	if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.Outbox == 0 }); err != nil {
		t.Fatal(err)
	}
	oldEpoch := c.Snapshot().Epoch
	green := startServer(t, "green", "CHAT_HANDOVER_DIR="+dir)
	began := time.Now()
	if err := blue.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// A fresh client on green must see a new epoch within a bounded time, and
	// green must accept messages as the new authority.
	for {
		g := chatclient.New(chatclient.Config{URL: "ws://" + green.addr + "/ws", Room: "k", Name: "g"})
		gctx, gcancel := context.WithTimeout(ctx, 3*time.Second)
		go func() { _ = g.Run(gctx) }()
		cid := g.Send("after", 0, 0)
		err := g.WaitFor(gctx, func(s chatclient.Snapshot) bool { _, ok := s.Acks[cid]; return ok })
		s := g.Snapshot()
		gcancel()
		if err == nil && s.Epoch != oldEpoch {
			if s.Applied[0].Text != "before" {
				t.Fatalf("history lost: %+v", s.Applied)
			}
			break
		}
		if time.Since(began) > 5*time.Second {
			t.Fatalf("green did not take over with a new epoch within 5s: %+v %v", s, err)
		}
	}
	t.Logf("new epoch after %v", time.Since(began))
}
