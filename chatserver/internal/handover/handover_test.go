package handover

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
)

func msg(sid string, i int) chat.Message {
	return chat.Message{SID: sid, CID: fmt.Sprintf("c%d", i), From: "mina", Text: fmt.Sprintf("m%d", i)}
}

func start(t *testing.T, dir string) (*chat.Hub, *Node) {
	t.Helper()
	hub := chat.NewHub(chat.Config{History: 100})
	n, err := Start(Config{Dir: dir, Source: hub.Authority(), Replica: hub.Replica()})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return hub, n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// state returns a room's state as seen through Follow.
func state(hub *chat.Hub, room string) chat.RoomState {
	var st chat.RoomState
	cancel := hub.Authority().Follow(func(ev chat.Event) {
		if ev.Room == room && ev.State != nil {
			st = *ev.State
		}
	})
	cancel()
	return st
}

func TestHandover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "h")
	a, na := start(t, dir)
	if !na.Primary() || !na.Ready() {
		t.Fatal("first node must be a ready primary")
	}
	for i := 1; i <= 5; i++ {
		if _, _, err := a.Authority().Append("r", msg("sa", i)); err != nil {
			t.Fatal(err)
		}
	}
	b, nb := start(t, dir)
	if nb.Primary() {
		t.Fatal("second node must be a standby")
	}
	eventually(t, "standby in sync", func() bool { return nb.Ready() && state(b, "r").Seq == 5 })
	if fi, err := os.Stat(filepath.Join(dir, socketName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v, want 0600", fi.Mode(), err)
	}

	// Live stream and forwarded sends: the primary sequences both.
	if _, _, err := a.Authority().Append("r", msg("sa", 6)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	seq, err := nb.up.Append(ctx, "r", msg("sb", 1))
	if err != nil || seq != 7 {
		t.Fatalf("forwarded send: seq %d err %v, want 7", seq, err)
	}
	if seq, _ := nb.up.Append(ctx, "r", msg("sb", 1)); seq != 7 {
		t.Fatalf("forwarded resend: seq %d, want the original 7", seq)
	}
	// A room first opened on the standby is created by the primary.
	if seq, err := nb.up.Append(ctx, "fresh", msg("sb", 2)); err != nil || seq != 1 {
		t.Fatalf("send to a new room via standby: %d %v", seq, err)
	}
	eventually(t, "standby sees 7", func() bool { return state(b, "r").Seq == 7 })

	a.Drain()
	if err := na.Handover(ctx); err != nil {
		t.Fatalf("handover: %v", err)
	}
	eventually(t, "standby leads", nb.Primary)
	sa, sb := state(a, "r"), state(b, "r")
	if sa.Epoch != sb.Epoch || sb.Seq != 7 {
		t.Fatalf("after handover: %s/%d, want %s/7", sb.Epoch, sb.Seq, sa.Epoch)
	}
	if seq, dup, _ := b.Authority().Append("r", msg("sa", 6)); seq != 6 || !dup {
		t.Fatalf("resend after handover: %d dup=%v, want the original 6", seq, dup)
	}
	if seq, _, _ := b.Authority().Append("r", msg("sb", 9)); seq != 8 {
		t.Fatalf("new primary continues at %d, want 8", seq)
	}
	// The next color attaches to the new primary.
	c, nc := start(t, dir)
	eventually(t, "third node in sync", func() bool { return nc.Ready() && state(c, "r").Seq == 8 })
}

func TestPredecessorVanishes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "h")
	a, na := start(t, dir)
	if _, _, err := a.Authority().Append("r", msg("s", 1)); err != nil {
		t.Fatal(err)
	}
	b, nb := start(t, dir)
	eventually(t, "standby in sync", func() bool { return nb.Ready() && state(b, "r").Seq == 1 })
	began := time.Now()
	_ = na.Close() // no handover: like a crash, the socket ends and the lock is free
	eventually(t, "standby leads", nb.Primary)
	if d := time.Since(began); d > 2*time.Second {
		t.Fatalf("took %v to take over, want under 2s", d)
	}
	if st := state(b, "r"); st.Epoch == state(a, "r").Epoch || st.Seq != 1 {
		t.Fatalf("after a lost predecessor: epoch %s seq %d, want a new epoch keeping seq 1", st.Epoch, st.Seq)
	}
}

func TestRefusesWritableFolder(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(Config{Dir: dir, Source: chat.NewHub(chat.Config{}).Authority(), Replica: chat.NewHub(chat.Config{}).Replica()}); err == nil {
		t.Fatal("want an error for a world-writable folder")
	}
}

func TestRejectsMalformedLines(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
	}{
		{"not json", "hello\n"},
		{"too long", string(make([]byte, maxLine+10)) + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newReader(stringsReader(tt.in))
			if _, err := r.next(); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}
