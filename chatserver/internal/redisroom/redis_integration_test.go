//go:build integration

package redisroom

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
	"github.com/mywebchat/mywebchat/chatserver/internal/replica"
	"github.com/mywebchat/mywebchat/test/chatclient"
)

// redisServer is a real redis-server on a free loopback port with its data in
// a temp folder; stop and start simulate a restart of the same server.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server is required for integration tests (scripts/setup.sh installs it): %v", err)
	}
	r := &redisServer{t: t, port: freePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisServer) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	// appendfsync always: an acked message survives even a SIGKILL.
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--maxmemory-policy", "noeviction", "--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port)})
		err := c.Ping(context.Background()).Err()
		_ = c.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server did not answer: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill stops the server abruptly (no final AOF rewrite, no goodbye to clients).
func (r *redisServer) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	_ = r.cmd.Wait()
	r.cmd = nil
}

func (r *redisServer) stop() { r.kill() }

// instance is one chat server: a hub whose rooms live in Redis, behind /ws.
type instance struct {
	hub   *chat.Hub
	store *Store
	srv   *httptest.Server
}

func newInstance(t *testing.T, url, prefix, color string) *instance {
	t.Helper()
	hub := chat.NewHub(chat.Config{History: 60, Color: color, Version: "itest"})
	st, err := New(t.Context(), Config{URL: url, Replica: hub.Replica(), History: 60, Prefix: prefix})
	if err != nil {
		t.Fatalf("redisroom.New: %v", err)
	}
	hub.Replica().SetRemote(st)
	srv := httptest.NewServer(chat.NewHandler(hub, chat.HandlerConfig{}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		hub.Drain()
		_ = hub.CloseAll(ctx, 10*time.Millisecond)
		srv.Close()
		_ = st.Close()
	})
	return &instance{hub: hub, store: st, srv: srv}
}

func (in *instance) wsURL() string { return "ws" + strings.TrimPrefix(in.srv.URL, "http") + "/ws" }

func runClient(t *testing.T, ctx context.Context, in *instance, room, name, sid string) *chatclient.Client {
	t.Helper()
	c := chatclient.New(chatclient.Config{URL: in.wsURL(), Room: room, Name: name, SID: sid, Origin: in.srv.URL})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	t.Cleanup(func() { <-done })
	return c
}

// twoInstances starts a Redis and two instances ("blue", "green") sharing
// its rooms under a fresh key prefix.
func twoInstances(t *testing.T) (*redisServer, string, *instance, *instance) {
	t.Helper()
	rs := startRedis(t)
	prefix := prefixFor(t)
	return rs, prefix, newInstance(t, rs.url(), prefix, "blue"), newInstance(t, rs.url(), prefix, "green")
}

func prefixFor(t *testing.T) string { return "redisroom-itest-" + chat.NewEpoch() + ":" }

// contiguous reports whether msgs are exactly seqs from..to in order.
func contiguous(msgs []chatclient.Msg, from, to uint64) bool {
	if uint64(len(msgs)) != to-from+1 {
		return false
	}
	for i, m := range msgs {
		if m.Seq != from+uint64(i) {
			return false
		}
	}
	return true
}

// waitAll waits until every client has an empty outbox and has applied seq want.
func waitAll(t *testing.T, ctx context.Context, want uint64, clients ...*chatclient.Client) {
	t.Helper()
	for _, c := range clients {
		if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.Outbox == 0 && s.LastSeq >= want }); err != nil {
			s := c.Snapshot()
			t.Fatalf("%v: last seq %d outbox %d welcomes %+v", err, s.LastSeq, s.Outbox, s.Welcomes)
		}
	}
}

func TestTwoInstancesShareRooms(t *testing.T) {
	_, _, a, b := twoInstances(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ca := runClient(t, ctx, a, "lobby", "ann", "sid-ann")
	cb := runClient(t, ctx, b, "lobby", "bob", "sid-bob")
	for _, c := range []*chatclient.Client{ca, cb} {
		if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.Live }); err != nil {
			t.Fatal(err)
		}
	}
	const perClient = 15
	for i := range perClient {
		ca.Send(fmt.Sprintf("from a %d", i), 0.1, 0.1)
		cb.Send(fmt.Sprintf("from b %d", i), 0.9, 0.9)
		time.Sleep(150 * time.Millisecond) // stay under the 10 sends / 2 s rate limit
	}
	waitAll(t, ctx, 2*perClient, ca, cb)
	sa, sb := ca.Snapshot(), cb.Snapshot()
	if sa.Epoch != sb.Epoch {
		t.Fatalf("epochs differ: a %q, b %q", sa.Epoch, sb.Epoch)
	}
	for name, s := range map[string]chatclient.Snapshot{"a": sa, "b": sb} {
		if !contiguous(s.Applied, 1, 2*perClient) {
			t.Fatalf("client %s applied %d msgs, want seqs 1..%d once each in order", name, len(s.Applied), 2*perClient)
		}
		if s.Dupes != 0 {
			t.Errorf("client %s got %d duplicate msg frames", name, s.Dupes)
		}
	}
	for i := range sa.Applied {
		if sa.Applied[i] != sb.Applied[i] {
			t.Fatalf("seq %d differs: a %+v, b %+v", i+1, sa.Applied[i], sb.Applied[i])
		}
	}

	t.Run("dedupe across instances", func(t *testing.T) {
		var cid string
		var want uint64
		for c, s := range sa.Acks {
			cid, want = c, s
			break
		}
		// The same (sid, cid) arriving at the other instance, as after a
		// reconnect through the load balancer, gets the original seq.
		got, err := b.store.Append(ctx, "lobby", chat.Message{SID: "sid-ann", CID: cid, From: "ann", Text: "again"})
		if err != nil || got != want {
			t.Fatalf("append duplicate on b: got seq %d err %v, want seq %d", got, err, want)
		}
		ca.Send("after the duplicate", 0.5, 0.5)
		waitAll(t, ctx, 2*perClient+1, ca, cb)
		if s := cb.Snapshot(); len(s.Applied) != 2*perClient+1 || s.Dupes != 0 {
			t.Fatalf("b applied %d msgs (dupes %d), want %d and no duplicate broadcast", len(s.Applied), s.Dupes, 2*perClient+1)
		}
	})

	t.Run("resume across instances", func(t *testing.T) {
		// A client that saw seq 10 on a reconnects to b and must get exactly 11.. .
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, b.wsURL()+"?room=lobby", nil)
		if err != nil {
			t.Fatalf("dial b: %v", err)
		}
		defer ws.Close()
		hello := map[string]any{"t": "hello", "name": "ann", "sid": "sid-ann", "epoch": sa.Epoch, "last_seq": 10}
		if err := ws.WriteJSON(hello); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		var w struct {
			T, Resume, Epoch string
			Seq              uint64
		}
		if err := ws.ReadJSON(&w); err != nil || w.T != "welcome" || w.Resume != "ok" || w.Epoch != sa.Epoch {
			t.Fatalf("got welcome %+v err %v, want resume ok in epoch %s", w, err, sa.Epoch)
		}
		next := uint64(11)
		for {
			var f struct {
				T   string
				Seq uint64
			}
			if err := ws.ReadJSON(&f); err != nil {
				t.Fatal(err)
			}
			if f.T == "resumed" {
				break
			}
			if f.T != "msg" {
				continue
			}
			if f.Seq != next {
				t.Fatalf("replay gave seq %d, want %d", f.Seq, next)
			}
			next++
		}
		if next != w.Seq+1 {
			t.Fatalf("replay ended at %d, want %d", next-1, w.Seq)
		}
	})
}

func TestRedisRestartLosesNothingAcked(t *testing.T) {
	rs, _, a, b := twoInstances(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	ca := runClient(t, ctx, a, "restart", "ann", "sid-ann")
	cb := runClient(t, ctx, b, "restart", "bob", "sid-bob")
	const total = 40
	var cidsA, cidsB []string
	for i := range total / 2 {
		if i == 5 {
			rs.kill()
		}
		// Down for 2 s: longer than the client library's dial retries
		// (about 1 s), so sends are refused and resent.
		if i == 15 {
			rs.start()
		}
		cidsA = append(cidsA, ca.Send(fmt.Sprintf("a %d", i), 0, 0))
		cidsB = append(cidsB, cb.Send(fmt.Sprintf("b %d", i), 1, 1))
		time.Sleep(200 * time.Millisecond)
	}
	waitAll(t, ctx, total, ca, cb)
	sa, sb := ca.Snapshot(), cb.Snapshot()
	if sa.Epoch != sb.Epoch || len(sa.Welcomes) == 0 || sa.Welcomes[0].Epoch != sa.Epoch {
		t.Fatalf("epoch changed across a restart with AOF: welcomes a %+v b %+v", sa.Welcomes, sb.Welcomes)
	}
	for name, s := range map[string]chatclient.Snapshot{"a": sa, "b": sb} {
		if !contiguous(s.Applied, 1, total) {
			t.Fatalf("client %s: applied %d msgs, want 1..%d exactly once", name, len(s.Applied), total)
		}
	}
	// The outage was felt (sends refused as draining and resent), but it
	// cost at most a reconnect.
	drained := 0
	for _, s := range []chatclient.Snapshot{sa, sb} {
		for _, e := range s.Errors {
			if e.Code == chat.CodeDraining {
				drained++
			}
		}
		if len(s.Closes) > 1 {
			t.Errorf("a client was disconnected %d times: %+v", len(s.Closes), s.Closes)
		}
	}
	if drained == 0 {
		t.Fatalf("no send was refused while Redis was down: the restart was not exercised (a: %+v %+v)", sa.Errors, sa.Closes)
	}
	seen := map[string]uint64{}
	for _, m := range sa.Applied {
		seen[m.CID] = m.Seq
	}
	for name, cids := range map[string][]string{"a": cidsA, "b": cidsB} {
		s := map[string]chatclient.Snapshot{"a": sa, "b": sb}[name]
		for _, cid := range cids {
			if seen[cid] == 0 || s.Acks[cid] != seen[cid] {
				t.Fatalf("client %s: cid %s acked as %d, delivered as %d", name, cid, s.Acks[cid], seen[cid])
			}
		}
	}
}

func TestRedisBackEmptyGivesNewEpoch(t *testing.T) {
	rs := startRedis(t)
	prefix := prefixFor(t)
	a := newInstance(t, rs.url(), prefix, "blue")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ca := runClient(t, ctx, a, "empty", "ann", "sid-ann")
	for i := range 3 {
		ca.Send(fmt.Sprintf("before %d", i), 0, 0)
	}
	waitAll(t, ctx, 3, ca)
	old := ca.Snapshot().Epoch
	// Flushing is what a Redis without persistence looks like after a restart.
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.port)})
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := ca.WaitFor(ctx, func(s chatclient.Snapshot) bool {
		n := len(s.Welcomes)
		return n > 1 && s.Welcomes[n-1].Resume == "reset" && s.Welcomes[n-1].Epoch != old
	}); err != nil {
		t.Fatalf("client was not reset into a new epoch: %v (%+v)", err, ca.Snapshot().Welcomes)
	}
	ca.Send("after", 0, 0)
	if err := ca.WaitFor(ctx, func(s chatclient.Snapshot) bool {
		return s.Outbox == 0 && s.LastSeq == 1 && s.Applied[len(s.Applied)-1].Text == "after"
	}); err != nil {
		t.Fatalf("new epoch does not start at seq 1: %v (%+v)", err, ca.Snapshot().Applied)
	}
}

// position is where the store's copy of room stands.
func position(st *Store, room string) replica.Position {
	p, _ := st.feed.Position(room)
	return p
}

// stale reports whether room waits for a fresh snapshot.
func stale(st *Store, room string) bool { return slices.Contains(st.feed.Stale(), room) }

// pausedStore returns a hub and a store whose follower does not run, so the
// test decides what it reads, with room opened.
func pausedStore(ctx context.Context, t *testing.T, rs *redisServer, prefix, room string) (*chat.Hub, *Store) {
	t.Helper()
	hub := chat.NewHub(chat.Config{History: 60})
	st := newStore(redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.port)}), Config{Replica: hub.Replica(), History: 60, Prefix: prefix})
	t.Cleanup(func() { st.Close() })
	hub.Replica().SetRemote(st)
	if err := st.Open(ctx, room); err != nil {
		t.Fatal(err)
	}
	return hub, st
}

func TestFollowerRepairsAGap(t *testing.T) {
	rs := startRedis(t)
	prefix := prefixFor(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	hub, st := pausedStore(ctx, t, rs, prefix, "gap")
	other, err := New(ctx, Config{URL: rs.url(), Replica: chat.NewHub(chat.Config{}).Replica(), History: 60, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := range 150 {
		if _, err := other.Append(ctx, "gap", chat.Message{SID: "w", CID: strconv.Itoa(i), From: "w", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	// Trim exactly, so the log no longer holds seqs 1..90.
	if err := st.rdb.XTrimMaxLen(ctx, st.keys("gap")[1], 60).Err(); err != nil {
		t.Fatal(err)
	}
	msgs, err := st.rdb.XRange(ctx, st.keys("gap")[1], "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	st.apply("gap", msgs)
	dirty, seq := stale(st, "gap"), position(st, "gap").Seq
	if !dirty || seq != 0 {
		t.Fatalf("after a gap: dirty %v seq %d, want dirty and nothing applied", dirty, seq)
	}
	if err := st.repair(ctx); err != nil {
		t.Fatalf("repair: %v", err)
	}
	dirty, seq = stale(st, "gap"), position(st, "gap").Seq
	if dirty || seq != 150 {
		t.Fatalf("after repair: dirty %v seq %d, want clean at 150", dirty, seq)
	}
	// The hub's replica is at 150 too: a new client is welcomed there.
	srv := httptest.NewServer(chat.NewHandler(hub, chat.HandlerConfig{}))
	defer srv.Close()
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws?room=gap", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"t": "hello", "name": "ann", "sid": "s"}); err != nil {
		t.Fatal(err)
	}
	var w struct {
		T   string
		Seq uint64
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.ReadJSON(&w); err != nil || w.T != "welcome" || w.Seq != 150 {
		t.Fatalf("got %+v err %v, want welcome at seq 150", w, err)
	}
}

func TestRedisBehindDeliveredStartsNewEpoch(t *testing.T) {
	rs := startRedis(t)
	prefix := prefixFor(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, st := pausedStore(ctx, t, rs, prefix, "back")
	for i := range 5 {
		if _, err := st.Append(ctx, "back", chat.Message{SID: "w", CID: strconv.Itoa(i), From: "w", Text: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	keys := st.keys("back")
	msgs, err := st.rdb.XRange(ctx, keys[1], "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	st.apply("back", msgs)
	old := position(st, "back")
	if old.Seq != 5 {
		t.Fatalf("delivered up to %d, want 5", old.Seq)
	}
	// Redis loses the last two acked writes but stays consistent, as after a
	// crash with appendfsync everysec.
	pipe := st.rdb.TxPipeline()
	pipe.HSet(ctx, keys[0], "seq", 3)
	pipe.XDel(ctx, keys[1], "4-0", "5-0")
	pipe.ZRem(ctx, keys[2], "w 3", "w 4")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	st.feed.MarkStale("back")
	if err := st.repair(ctx); err != nil {
		t.Fatal(err)
	}
	now := position(st, "back")
	if now.Epoch == old.Epoch || now.Seq != 0 {
		t.Fatalf("after Redis went back: epoch %s seq %d, want a new epoch at seq 0 (was %s at %d)", now.Epoch, now.Seq, old.Epoch, old.Seq)
	}
	// New messages start the new epoch at seq 1, so no client skips them.
	seq, err := st.Append(ctx, "back", chat.Message{SID: "w", CID: "new", From: "w", Text: "x"})
	if err != nil || seq != 1 {
		t.Fatalf("first append in the new epoch: seq %d err %v, want 1", seq, err)
	}
}

// TestPresenceSpansInstances: "online" counts a room's members on every
// instance; an instance that vanished stops counting once its count expires,
// one that closes stops at once.
func TestPresenceSpansInstances(t *testing.T) {
	rs, prefix, a, b := twoInstances(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	online := func(c *chatclient.Client, want int) {
		t.Helper()
		if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.Live && s.Online == want }); err != nil {
			t.Fatalf("online = %d, want %d: %v", c.Snapshot().Online, want, err)
		}
	}
	ca := runClient(t, ctx, a, "hall", "ann", "sid-ann")
	cb := runClient(t, ctx, b, "hall", "bob", "sid-bob")
	online(ca, 2)
	online(cb, 2)
	cb2 := runClient(t, ctx, b, "hall", "cy", "sid-cy")
	online(ca, 3)
	online(cb2, 3)

	// An instance that died without clearing its count: counted until the
	// count expires, then dropped by the next reader.
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.port)})
	defer rdb.Close()
	set := prefix + "presence:{hall}"
	if err := rdb.Set(ctx, set+":ghost", 5, 500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.SAdd(ctx, set, "ghost")
	rdb.Publish(ctx, prefix+"presence", "hall")
	online(ca, 8)
	time.Sleep(600 * time.Millisecond)
	rdb.Publish(ctx, prefix+"presence", "hall")
	online(ca, 3)
	if ok, _ := rdb.SIsMember(ctx, set, "ghost").Result(); ok {
		t.Error("the expired instance is still listed in the room's presence set")
	}

	// A clean exit clears this instance's count at once.
	if err := b.store.Close(); err != nil {
		t.Fatal(err)
	}
	online(ca, 1)
}
