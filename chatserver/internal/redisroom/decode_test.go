package redisroom

import (
	"errors"
	"strings"
	"testing"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
)

func fields(over map[string]any) map[string]any {
	f := map[string]any{"e": "ep1", "s": "sid1", "c": "cid1", "f": "mina", "t": "hello",
		"x": "0.25", "y": "1", "ts": "1764000000000"}
	for k, v := range over {
		if v == nil {
			delete(f, k)
			continue
		}
		f[k] = v
	}
	return f
}

func TestDecodeEntry(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		fields  map[string]any
		wantErr bool
		want    chat.Message
	}{
		{name: "ok", id: "7-0", fields: fields(nil),
			want: chat.Message{Seq: 7, SID: "sid1", CID: "cid1", From: "mina", Text: "hello", X: 0.25, Y: 1, TS: 1764000000000}},
		{name: "auto id", id: "1764000000000-3", fields: fields(nil), wantErr: true},
		{name: "seq zero", id: "0-0", fields: fields(nil), wantErr: true},
		{name: "id garbage", id: "x-0", fields: fields(nil), wantErr: true},
		{name: "missing text", id: "1-0", fields: fields(map[string]any{"t": nil}), wantErr: true},
		{name: "empty text", id: "1-0", fields: fields(map[string]any{"t": ""}), wantErr: true},
		{name: "text too long", id: "1-0", fields: fields(map[string]any{"t": strings.Repeat("a", 281)}), wantErr: true},
		{name: "value too big", id: "1-0", fields: fields(map[string]any{"f": strings.Repeat("a", maxValueBytes+1)}), wantErr: true},
		{name: "x out of range", id: "1-0", fields: fields(map[string]any{"x": "1.5"}), wantErr: true},
		{name: "x NaN", id: "1-0", fields: fields(map[string]any{"x": "NaN"}), wantErr: true},
		{name: "ts garbage", id: "1-0", fields: fields(map[string]any{"ts": "soon"}), wantErr: true},
		{name: "sid with space", id: "1-0", fields: fields(map[string]any{"s": "a b"}), wantErr: true},
		{name: "non-string field", id: "1-0", fields: fields(map[string]any{"c": int64(3)}), wantErr: true},
		{name: "too many fields", id: "1-0", fields: func() map[string]any {
			f := fields(nil)
			for i := range maxFields {
				f[strings.Repeat("z", i+3)] = "1"
			}
			return f
		}(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := decodeEntry(tt.id, tt.fields)
			if tt.wantErr {
				if !errors.Is(err, ErrBadData) {
					t.Fatalf("got err %v, want ErrBadData", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if e.msg != tt.want || e.epoch != "ep1" {
				t.Fatalf("got %+v epoch %q, want %+v epoch ep1", e.msg, e.epoch, tt.want)
			}
		})
	}
}

// luaEntry builds an entry the way a script returns it.
func luaEntry(seq string, epoch, sid, cid string) any {
	return []any{seq + "-0", []any{"e", epoch, "s", sid, "c", cid, "f", "mina", "t", "hi " + seq,
		"x", "0", "y", "0", "ts", "1"}}
}

func TestDecodeSnapshot(t *testing.T) {
	tests := []struct {
		name      string
		reply     any
		wantErr   bool
		wantSeq   uint64
		wantHist  []uint64
		wantDedup []chat.DedupeEntry
	}{
		{name: "new room", reply: []any{"ep1", int64(0), []any{}, []any{}}, wantSeq: 0},
		{
			name: "newest first is reordered",
			reply: []any{"ep1", int64(3),
				[]any{luaEntry("3", "ep1", "a", "3"), luaEntry("2", "ep1", "a", "2")},
				[]any{"a 3", "3", "a 2", "2", "a 1", "1"}},
			wantSeq: 3, wantHist: []uint64{2, 3},
			wantDedup: []chat.DedupeEntry{{SID: "a", CID: "1", Seq: 1}, {SID: "a", CID: "2", Seq: 2}, {SID: "a", CID: "3", Seq: 3}},
		},
		{name: "history not ending at seq", reply: []any{"ep1", int64(4),
			[]any{luaEntry("3", "ep1", "a", "3")}, []any{}}, wantErr: true},
		{name: "history with a hole", reply: []any{"ep1", int64(3),
			[]any{luaEntry("3", "ep1", "a", "3"), luaEntry("1", "ep1", "a", "1")}, []any{}}, wantErr: true},
		{name: "entry of another epoch", reply: []any{"ep1", int64(1),
			[]any{luaEntry("1", "ep0", "a", "1")}, []any{}}, wantErr: true},
		{name: "bad epoch", reply: []any{"bad epoch", int64(0), []any{}, []any{}}, wantErr: true},
		{name: "dedupe seq beyond room seq", reply: []any{"ep1", int64(1),
			[]any{luaEntry("1", "ep1", "a", "1")}, []any{"a 9", "9"}}, wantErr: true},
		{name: "dedupe member without cid", reply: []any{"ep1", int64(1),
			[]any{luaEntry("1", "ep1", "a", "1")}, []any{"a", "1"}}, wantErr: true},
		{name: "too much history", reply: []any{"ep1", int64(3),
			[]any{luaEntry("3", "ep1", "a", "3"), luaEntry("2", "ep1", "a", "2"), luaEntry("1", "ep1", "a", "1")}, []any{}}, wantErr: true},
		{name: "wrong shape", reply: []any{"ep1", "3"}, wantErr: true},
		{name: "negative seq", reply: []any{"ep1", int64(-1), []any{}, []any{}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := decodeSnapshot(tt.reply, 2, 4)
			if tt.wantErr {
				if !errors.Is(err, ErrBadData) {
					t.Fatalf("got err %v, want ErrBadData", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if st.Seq != tt.wantSeq || st.Epoch != "ep1" {
				t.Fatalf("got seq %d epoch %q, want %d ep1", st.Seq, st.Epoch, tt.wantSeq)
			}
			var got []uint64
			for _, m := range st.History {
				got = append(got, m.Seq)
			}
			if len(got) != len(tt.wantHist) {
				t.Fatalf("got history %v, want %v", got, tt.wantHist)
			}
			for i := range got {
				if got[i] != tt.wantHist[i] {
					t.Fatalf("got history %v, want %v", got, tt.wantHist)
				}
			}
			if len(st.Dedupe) != len(tt.wantDedup) {
				t.Fatalf("got dedupe %v, want %v", st.Dedupe, tt.wantDedup)
			}
			for i := range st.Dedupe {
				if st.Dedupe[i] != tt.wantDedup[i] {
					t.Fatalf("got dedupe %v, want %v", st.Dedupe, tt.wantDedup)
				}
			}
		})
	}
}

func TestDecodeAppend(t *testing.T) {
	tests := []struct {
		name    string
		reply   any
		wantErr bool
		seq     uint64
		dup     bool
	}{
		{name: "new", reply: []any{"ep", int64(5), int64(0)}, seq: 5},
		{name: "dup", reply: []any{"ep", int64(2), int64(1)}, seq: 2, dup: true},
		{name: "zero seq", reply: []any{"ep", int64(0), int64(0)}, wantErr: true},
		{name: "no epoch", reply: []any{"", int64(1), int64(0)}, wantErr: true},
		{name: "shape", reply: "OK", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			epoch, seq, dup, err := decodeAppend(tt.reply)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got seq %d, want an error", seq)
				}
				return
			}
			if err != nil || epoch != "ep" || seq != tt.seq || dup != tt.dup {
				t.Fatalf("got (%q, %d, %v, %v), want (ep, %d, %v, nil)", epoch, seq, dup, err, tt.seq, tt.dup)
			}
		})
	}
}

func TestKeysShareAHashTag(t *testing.T) {
	s := newStore(nil, Config{Replica: chat.NewHub(chat.Config{}).Replica()})
	for _, k := range s.keys("lobby") {
		if !strings.HasPrefix(k, "mywebchat:room:{lobby}:") {
			t.Errorf("key %q: want prefix mywebchat:room:{lobby}: so one script touches one slot", k)
		}
	}
	if got, want := seqID(41), "41-0"; got != want {
		t.Errorf("seqID(41) = %q, want %q", got, want)
	}
}

func TestNewStoreBounds(t *testing.T) {
	tests := []struct {
		name       string
		cfg        Config
		history    int
		window     int
		ttlSeconds int64
	}{
		{name: "defaults", cfg: Config{}, history: chat.DefaultHistory, window: 1024, ttlSeconds: int64(DefaultTTL.Seconds())},
		{name: "big history widens the window", cfg: Config{History: 1000, TTL: -1}, history: 1000, window: 4000, ttlSeconds: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Replica = chat.NewHub(chat.Config{}).Replica()
			s := newStore(nil, tt.cfg)
			if s.history != tt.history || s.window != tt.window || s.ttl != tt.ttlSeconds {
				t.Fatalf("got history %d window %d ttl %d, want %d %d %d", s.history, s.window, s.ttl, tt.history, tt.window, tt.ttlSeconds)
			}
		})
	}
}

func TestNewRejectsBadURLWithoutEchoingIt(t *testing.T) {
	_, err := New(t.Context(), Config{URL: "http://user:s3cret@example/0", Replica: chat.NewHub(chat.Config{}).Replica()})
	if !errors.Is(err, ErrBadURL) {
		t.Fatalf("got %v, want ErrBadURL", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %q leaks the password", err)
	}
}
