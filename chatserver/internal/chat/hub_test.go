package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func msg(i int) Message {
	return Message{SID: "s", CID: fmt.Sprintf("c%d", i), From: "mina", Text: fmt.Sprintf("m%d", i)}
}

// fill appends n messages to room through the hub and returns the hub.
func fill(t *testing.T, history, n int) *Hub {
	t.Helper()
	h := NewHub(Config{History: history})
	for i := 1; i <= n; i++ {
		seq, dup, err := h.Authority().Append("r", msg(i))
		if err != nil || dup || seq != uint64(i) {
			t.Fatalf("append %d: got seq %d dup %v err %v", i, seq, dup, err)
		}
	}
	return h
}

func seqs(t *testing.T, frames [][]byte) []uint64 {
	t.Helper()
	var out []uint64
	for _, f := range frames {
		var m struct {
			T   string `json:"t"`
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(f, &m); err != nil || m.T != "msg" {
			t.Fatalf("bad frame %s: %v", f, err)
		}
		out = append(out, m.Seq)
	}
	return out
}

func span(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestReplay(t *testing.T) {
	h := fill(t, 60, 100) // kept: seq 41..100
	r := h.rooms.get("r")
	epoch := r.epoch
	tests := []struct {
		name       string
		hello      Hello
		wantResume string
		wantSeqs   []uint64
	}{
		{"fresh client gets the last 50", Hello{}, "reset", span(51, 100)},
		{"up to date", Hello{Resume: true, Epoch: epoch, LastSeq: 100}, "ok", nil},
		{"missed some", Hello{Resume: true, Epoch: epoch, LastSeq: 97}, "ok", span(98, 100)},
		{"oldest kept boundary", Hello{Resume: true, Epoch: epoch, LastSeq: 40}, "ok", span(41, 100)},
		{"one before the kept history", Hello{Resume: true, Epoch: epoch, LastSeq: 39}, "reset", span(51, 100)},
		{"last_seq 0 after history was trimmed", Hello{Resume: true, Epoch: epoch, LastSeq: 0}, "reset", span(51, 100)},
		{"other epoch", Hello{Resume: true, Epoch: "other", LastSeq: 99}, "reset", span(51, 100)},
		{"ahead of the room", Hello{Resume: true, Epoch: epoch, LastSeq: 101}, "reset", span(51, 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lr := r.lock()
			resume, frames := lr.replay(&tt.hello)
			lr.unlock()
			got := seqs(t, frames)
			if resume != tt.wantResume || fmt.Sprint(got) != fmt.Sprint(tt.wantSeqs) {
				t.Fatalf("got %s %v, want %s %v", resume, got, tt.wantResume, tt.wantSeqs)
			}
		})
	}
}

func TestReplayEmptyRoom(t *testing.T) {
	h := NewHub(Config{})
	if _, err := h.open(t.Context(), "r"); err != nil {
		t.Fatal(err)
	}
	r := h.rooms.get("r")
	lr := r.lock()
	resume, frames := lr.replay(&Hello{Resume: true, Epoch: r.epoch, LastSeq: 0})
	lr.unlock()
	if resume != "ok" || len(frames) != 0 {
		t.Fatalf("got %s with %d frames, want ok with none", resume, len(frames))
	}
}

func TestDedupe(t *testing.T) {
	h := fill(t, 50, 10)
	tests := []struct {
		name    string
		m       Message
		wantSeq uint64
		wantDup bool
	}{
		{"resend gets the original seq", msg(3), 3, true},
		{"same cid other session is new", Message{SID: "other", CID: "c3", From: "x", Text: "y"}, 11, false},
		{"new cid", msg(11), 12, false},
		{"resend of the newest", msg(11), 12, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, dup, err := h.Authority().Append("r", tt.m)
			if err != nil || seq != tt.wantSeq || dup != tt.wantDup {
				t.Fatalf("got seq %d dup %v err %v, want %d %v", seq, dup, err, tt.wantSeq, tt.wantDup)
			}
		})
	}
}

func TestDedupeWindowIsBounded(t *testing.T) {
	h := fill(t, 50, 5000)
	r := h.rooms.get("r")
	if n := len(r.dedupe); n > 2*DedupeWindow(50) {
		t.Fatalf("dedupe holds %d entries, want at most %d", n, 2*DedupeWindow(50))
	}
	// The newest window is always remembered.
	if seq, dup, _ := h.Authority().Append("r", msg(5000-DedupeWindow(50)+1)); !dup || seq != uint64(5000-DedupeWindow(50)+1) {
		t.Fatalf("recent send not deduped: seq %d dup %v", seq, dup)
	}
	if len(r.hist) > 2*50 {
		t.Fatalf("history holds %d entries, want at most 100", len(r.hist))
	}
}

func TestDrainRefusesAppends(t *testing.T) {
	h := fill(t, 50, 1)
	h.Drain()
	if _, _, err := h.Authority().Append("r", msg(2)); !errors.Is(err, ErrDraining) {
		t.Fatalf("got %v, want ErrDraining", err)
	}
}

func TestReplicaApplyAndInstall(t *testing.T) {
	src := fill(t, 50, 20)
	var events []Event
	cancel := src.Authority().Follow(func(ev Event) { events = append(events, ev) })
	for i := 21; i <= 25; i++ {
		if _, _, err := src.Authority().Append("r", msg(i)); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	dst := NewHub(Config{History: 50})
	for _, ev := range events {
		var err error
		if ev.State != nil {
			err = dst.Replica().Install(ev.Room, *ev.State)
		} else {
			err = dst.Replica().Apply(ev.Room, *ev.Msg)
		}
		if err != nil {
			t.Fatalf("replay event: %v", err)
		}
	}
	r, s := dst.rooms.get("r"), src.rooms.get("r")
	if r.seq != 25 || r.epoch != s.epoch {
		t.Fatalf("replica at %s/%d, want %s/25", r.epoch, r.seq, s.epoch)
	}
	// A replica answers resends with the original seq once promoted.
	dst.Replica().Promote(false)
	if seq, dup, err := dst.Authority().Append("r", msg(22)); seq != 22 || !dup || err != nil {
		t.Fatalf("promoted replica: got %d %v %v, want 22 dup", seq, dup, err)
	}
	if seq, _, _ := dst.Authority().Append("r", msg(26)); seq != 26 {
		t.Fatalf("promoted replica continues at %d, want 26", seq)
	}
	if err := dst.Replica().Apply("r", Message{Seq: 40, SID: "s", CID: "x", From: "a", Text: "b"}); !errors.Is(err, ErrGap) {
		t.Fatalf("gap: got %v, want ErrGap", err)
	}
	dst.Replica().Promote(true)
	if dst.rooms.get("r").epoch == s.epoch {
		t.Fatal("lost continuity must start a new epoch")
	}
}

func TestInstallRejectsInconsistentState(t *testing.T) {
	good := Message{SID: "s", CID: "c", From: "a", Text: "b"}
	m := func(seq uint64) Message { g := good; g.Seq = seq; return g }
	tests := []struct {
		name string
		st   RoomState
	}{
		{"bad epoch", RoomState{Epoch: "", Seq: 0}},
		{"gap in history", RoomState{Epoch: "e", Seq: 3, History: []Message{m(1), m(3)}}},
		{"history past seq", RoomState{Epoch: "e", Seq: 1, History: []Message{m(1), m(2)}}},
		{"bad message", RoomState{Epoch: "e", Seq: 1, History: []Message{{Seq: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := NewHub(Config{}).Replica().Install("r", tt.st); !errors.Is(err, ErrBadState) {
				t.Fatalf("got %v, want ErrBadState", err)
			}
		})
	}
}

func TestRateLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l rateLimiter
		for i := range rateLimit {
			if ok, _ := l.allow(time.Now()); !ok {
				t.Fatalf("send %d refused", i+1)
			}
			time.Sleep(100 * time.Millisecond)
		}
		// 10 sends in 0..0.9 s: the 11th at 1.0 s must wait until 2.0 s.
		ok, retry := l.allow(time.Now())
		if ok || retry != time.Second {
			t.Fatalf("11th send: got ok=%v retry=%v, want refused with 1s", ok, retry)
		}
		time.Sleep(retry)
		if ok, _ := l.allow(time.Now()); !ok {
			t.Fatal("send after retry refused")
		}
		// Refused sends do not count: the window still holds the 2nd..11th.
		if ok, retry := l.allow(time.Now()); ok || retry != 100*time.Millisecond {
			t.Fatalf("got ok=%v retry=%v, want refused with 100ms", ok, retry)
		}
		time.Sleep(2 * time.Second)
		for i := range rateLimit {
			if ok, _ := l.allow(time.Now()); !ok {
				t.Fatalf("burst send %d after a quiet window refused", i+1)
			}
		}
	})
}

func TestLingerClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l lingerClock
		start := time.Now()
		ch := l.wait()
		<-ch
		if d := time.Since(start); d != lingerTick {
			t.Fatalf("first tick after %v, want %v", d, lingerTick)
		}
		// Still waiting: the clock keeps ticking.
		ch = l.wait()
		l.done() // the first wait
		<-ch
		if d := time.Since(start); d != 2*lingerTick {
			t.Fatalf("second tick after %v, want %v", d, 2*lingerTick)
		}
		l.done()
		// Nobody waits: after the next fire the clock disarms (no timer left,
		// which synctest would report as a leak at the end of the bubble).
		time.Sleep(lingerTick)
		synctest.Wait()
		l.mu.Lock()
		armed := l.armed
		l.mu.Unlock()
		if armed {
			t.Fatal("clock still armed with no waiters")
		}
	})
}

func TestCloseSpread(t *testing.T) {
	tests := []struct {
		n     int
		limit time.Duration
		want  time.Duration
	}{
		{0, 1500 * time.Millisecond, minSpread},
		{1, 1500 * time.Millisecond, minSpread},
		{40, 1500 * time.Millisecond, minSpread}, // a small room is back at once
		{1000, 1500 * time.Millisecond, 300 * time.Millisecond},
		{5000, 1500 * time.Millisecond, 1500 * time.Millisecond}, // a wave keeps its spread
		{20000, 1500 * time.Millisecond, 1500 * time.Millisecond},
		{40, 10 * time.Millisecond, 10 * time.Millisecond}, // the caller's limit wins
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n, "/", tt.limit), func(t *testing.T) {
			if got := closeSpread(tt.n, tt.limit); got != tt.want {
				t.Fatalf("closeSpread(%d, %v) = %v, want %v", tt.n, tt.limit, got, tt.want)
			}
		})
	}
}

// gatedRemote counts its Opens and holds each until release is closed; it
// fails them while fail is set, else installs the room empty.
type gatedRemote struct {
	hub     *Hub
	release chan struct{}
	mu      sync.Mutex
	opens   int
	fail    error
}

func (r *gatedRemote) Open(ctx context.Context, room string) error {
	r.mu.Lock()
	r.opens++
	fail, release := r.fail, r.release
	r.mu.Unlock()
	select {
	case <-release:
	case <-ctx.Done():
		return ctx.Err()
	}
	if fail != nil {
		return fail
	}
	return r.hub.Replica().Install(room, RoomState{Epoch: "shared"})
}

func (r *gatedRemote) Append(context.Context, string, Message) (uint64, error) {
	return 0, ErrDraining
}

func (r *gatedRemote) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opens
}

// TestConcurrentOpensShareOneFetch: joins that find a room not held yet at
// the same moment (a deploy's moves, a reconnect wave) fetch it from the
// Remote once and all get it; a failed fetch fails them all, and the next
// join fetches again.
func TestConcurrentOpensShareOneFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHub(Config{})
		rem := &gatedRemote{hub: h, fail: errors.New("store away")}
		h.Replica().SetRemote(rem)
		const n = 8
		openAll := func() []error {
			release := make(chan struct{})
			rem.mu.Lock()
			rem.release = release
			rem.mu.Unlock()
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					_, errs[i] = h.open(t.Context(), "r1")
				})
			}
			synctest.Wait() // every caller is in open, waiting
			if got := rem.count(); got != 1 {
				t.Errorf("%d concurrent opens of one room fetched it %d times, want once", n, got)
			}
			close(release)
			wg.Wait()
			return errs
		}
		for i, err := range openAll() {
			if err == nil || !strings.Contains(err.Error(), "store away") {
				t.Errorf("open %d while the store fails: got %v, want its error", i, err)
			}
		}
		rem.mu.Lock()
		rem.fail, rem.opens = nil, 0
		rem.mu.Unlock()
		for i, err := range openAll() {
			if err != nil {
				t.Errorf("open %d: %v", i, err)
			}
		}
		if h.rooms.get("r1") == nil {
			t.Error("room r1 not held after the opens")
		}
	})
}
