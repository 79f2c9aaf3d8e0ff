package replica

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
)

// recorder is a Target that records what reached it and refuses what refuse
// says.
type recorder struct {
	got    []string
	refuse error
}

func (r *recorder) Install(room string, st chat.RoomState) error {
	if r.refuse != nil {
		return r.refuse
	}
	r.got = append(r.got, fmt.Sprintf("install %s %s/%d", room, st.Epoch, st.Seq))
	return nil
}

func (r *recorder) Apply(room string, m chat.Message) error {
	if r.refuse != nil {
		return r.refuse
	}
	r.got = append(r.got, fmt.Sprintf("apply %s %d", room, m.Seq))
	return nil
}

func msg(seq uint64) chat.Message {
	return chat.Message{Seq: seq, SID: "s", CID: fmt.Sprint(seq), From: "a", Text: "b"}
}

func TestFeed(t *testing.T) {
	type step struct {
		install *chat.RoomState // else apply
		epoch   string
		seq     uint64
		wantErr error
	}
	st := func(epoch string, seq uint64) *chat.RoomState { return &chat.RoomState{Epoch: epoch, Seq: seq} }
	tests := []struct {
		name      string
		steps     []step
		want      []string
		wantStale []string
	}{
		{"snapshot then messages in order", []step{{install: st("e", 3)}, {epoch: "e", seq: 4}, {epoch: "", seq: 5}},
			[]string{"install r e/3", "apply r 4", "apply r 5"}, []string{}},
		{"messages already applied are skipped", []step{{install: st("e", 3)}, {epoch: "e", seq: 2}, {epoch: "e", seq: 3}, {epoch: "e", seq: 4}},
			[]string{"install r e/3", "apply r 4"}, []string{}},
		{"a gap marks the room stale", []step{{install: st("e", 3)}, {epoch: "e", seq: 5, wantErr: chat.ErrGap}},
			[]string{"install r e/3"}, []string{"r"}},
		{"another epoch marks the room stale", []step{{install: st("e", 3)}, {epoch: "f", seq: 4, wantErr: ErrOtherEpoch}},
			[]string{"install r e/3"}, []string{"r"}},
		{"a snapshot the messages overtook is skipped", []step{{install: st("e", 3)}, {epoch: "e", seq: 4}, {install: st("e", 4)}, {install: st("e", 3)}},
			[]string{"install r e/3", "apply r 4"}, []string{}},
		{"a newer snapshot installs and clears staleness", []step{{install: st("e", 3)}, {epoch: "e", seq: 6, wantErr: ErrResync}, {install: st("e", 6)}, {epoch: "e", seq: 7}},
			[]string{"install r e/3", "install r e/6", "apply r 7"}, []string{}},
		{"a new epoch installs even when behind", []step{{install: st("e", 3)}, {install: st("f", 0)}, {epoch: "", seq: 1}},
			[]string{"install r e/3", "install r f/0", "apply r 1"}, []string{}},
		{"a room never installed", []step{{epoch: "e", seq: 1, wantErr: chat.ErrUnknownRoom}},
			nil, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			f := New(rec)
			for i, s := range tt.steps {
				var err error
				if s.install != nil {
					_, err = f.Install("r", *s.install)
				} else {
					err = f.Apply("r", s.epoch, msg(s.seq))
				}
				if (s.wantErr == nil) != (err == nil) || (s.wantErr != nil && !errors.Is(err, s.wantErr)) {
					t.Fatalf("step %d: got %v, want %v", i, err, s.wantErr)
				}
			}
			if !slices.Equal(rec.got, tt.want) {
				t.Fatalf("target got %q, want %q", rec.got, tt.want)
			}
			if got := f.Stale(); !slices.Equal(got, tt.wantStale) {
				t.Fatalf("stale %q, want %q", got, tt.wantStale)
			}
		})
	}
}

func TestFeedTargetRefusal(t *testing.T) {
	rec := &recorder{}
	f := New(rec)
	if _, err := f.Install("r", chat.RoomState{Epoch: "e", Seq: 1}); err != nil {
		t.Fatal(err)
	}
	rec.refuse = chat.ErrBadState
	if err := f.Apply("r", "e", msg(2)); !errors.Is(err, ErrResync) || !errors.Is(err, chat.ErrBadState) {
		t.Fatalf("got %v, want ErrResync wrapping the target's error", err)
	}
	if p, _ := f.Position("r"); p.Seq != 1 {
		t.Fatalf("position %d after a refused message, want 1", p.Seq)
	}
	if _, err := f.Install("q", chat.RoomState{Epoch: "e"}); !errors.Is(err, chat.ErrBadState) {
		t.Fatalf("refused install: got %v", err)
	}
	if _, held := f.Position("q"); held {
		t.Fatal("a refused snapshot must not count as held")
	}
	if got := f.Stale(); !slices.Equal(got, []string{"r"}) {
		t.Fatalf("stale %q, want [r]", got)
	}
}

func TestFeedNewEpochReported(t *testing.T) {
	f := New(&recorder{})
	for _, tt := range []struct {
		st   chat.RoomState
		want bool
	}{
		{chat.RoomState{Epoch: "e", Seq: 1}, false}, // first snapshot
		{chat.RoomState{Epoch: "e", Seq: 2}, false},
		{chat.RoomState{Epoch: "f", Seq: 0}, true},
	} {
		if got, err := f.Install("r", tt.st); err != nil || got != tt.want {
			t.Fatalf("install %+v: newEpoch %v err %v, want %v", tt.st, got, err, tt.want)
		}
	}
	f.MarkAllStale()
	if got := f.Stale(); !slices.Equal(got, []string{"r"}) {
		t.Fatalf("stale %q after MarkAllStale, want [r]", got)
	}
}
