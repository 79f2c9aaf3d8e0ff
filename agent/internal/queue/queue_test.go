package queue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/state"
)

func newQueue(t *testing.T) Queue {
	t.Helper()
	q := Queue{StateDir: filepath.Join(t.TempDir(), "state")}
	if err := q.Init(); err != nil {
		t.Fatal(err)
	}
	return q
}

func TestInitIsRootOnly(t *testing.T) {
	q := newQueue(t)
	for _, d := range []string{q.StateDir, q.QueueDir()} {
		fi, err := os.Stat(d)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode = %v (%v), want 0700", d, fi.Mode().Perm(), err)
		}
	}
}

func TestEnqueueReadRemove(t *testing.T) {
	q := newQueue(t)
	req := Request{ID: NewID(time.Now()), Kind: state.KindDeploy, Image: "mywebchat/app:v1", Requested: time.Now().UTC()}
	if err := q.Enqueue(req, nil); err != nil {
		t.Fatal(err)
	}
	second := Request{ID: NewID(time.Now()), Kind: state.KindDeploy, Image: "mywebchat/app:v2"}
	err := q.Enqueue(second, nil)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "mywebchat/app:v1") {
		t.Errorf("second Enqueue = %v, want ErrBusy naming the first", err)
	}
	ids, _ := q.Pending()
	if len(ids) != 1 || ids[0] != req.ID {
		t.Fatalf("Pending = %v, want [%s]", ids, req.ID)
	}
	got, err := q.Read(req.ID)
	if err != nil || got.Image != req.Image {
		t.Errorf("Read = %+v, %v", got, err)
	}
	if err := q.Remove(req.ID); err != nil || q.Has(req.ID) {
		t.Errorf("Remove: %v, still there: %v", err, q.Has(req.ID))
	}
	busy := errors.New("deploy X running")
	if err := q.Enqueue(second, func() error { return busy }); !errors.Is(err, busy) {
		t.Errorf("Enqueue with busy = %v, want busy error", err)
	}
}

func TestReadRejectsGarbage(t *testing.T) {
	q := newQueue(t)
	id := NewID(time.Now())
	tests := []struct{ name, content, want string }{
		{"not json", "hello", "bad request"},
		{"too big", `{"id":"` + strings.Repeat("x", MaxRequestBytes) + `"}`, "larger than"},
		{"unknown field", `{"id":"` + id + `","kind":"deploy","image":"a","x":1}`, "unknown field"},
		{"wrong id", `{"id":"other","kind":"deploy","image":"a"}`, "does not match"},
		{"bad kind", `{"id":"` + id + `","kind":"nuke"}`, "unknown kind"},
		{"no image", `{"id":"` + id + `","kind":"deploy"}`, "image missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(q.QueueDir(), id+".json"), []byte(tt.content), 0o600)
			_, err := q.Read(id)
			if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Read = %v, want ErrBadRequest with %q", err, tt.want)
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	q := newQueue(t)
	for i := range MaxPending {
		os.WriteFile(filepath.Join(q.QueueDir(), strings.Repeat("a", i+1)+".json"), []byte("x"), 0o600)
	}
	if err := q.Enqueue(Request{ID: NewID(time.Now()), Kind: state.KindRollback}, nil); !errors.Is(err, ErrFull) {
		t.Errorf("Enqueue into full queue = %v, want ErrFull", err)
	}
}

func TestFollow(t *testing.T) {
	q := newQueue(t)
	id := NewID(time.Now())
	go func() {
		for _, s := range []string{"validate", "pull", "start"} {
			q.AppendEvent(id, Event{Step: s, Status: "started"})
			time.Sleep(20 * time.Millisecond)
		}
		q.WriteResult(Result{ID: id, Result: "succeeded"})
	}()
	var steps []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := q.Follow(ctx, id, func(e Event) { steps = append(steps, e.Step) }, nil)
	if err != nil || r.Result != "succeeded" {
		t.Fatalf("Follow = %+v, %v", r, err)
	}
	if strings.Join(steps, ",") != "validate,pull,start" {
		t.Errorf("events = %v", steps)
	}
	dead := errors.New("agent died")
	if _, err := q.Follow(ctx, NewID(time.Now()), func(Event) {}, func() error { return dead }); !errors.Is(err, dead) {
		t.Errorf("Follow with dead agent = %v", err)
	}
}

func TestLock(t *testing.T) {
	q := newQueue(t)
	if q.AgentRunning() {
		t.Fatal("AgentRunning before Lock")
	}
	f, err := q.Lock()
	if err != nil {
		t.Fatal(err)
	}
	if !q.AgentRunning() {
		t.Error("AgentRunning = false while locked")
	}
	if _, err := q.Lock(); !errors.Is(err, ErrLocked) {
		t.Errorf("second Lock = %v, want ErrLocked", err)
	}
	f.Close()
	if q.AgentRunning() {
		t.Error("AgentRunning after unlock")
	}
}

// TestFollowSeesTheResultSoon: Follow returns within 10ms of the result
// being written (the deploy's time as `deploy --wait` reports it), and asks
// whether the agent runs only every followAlive.
func TestFollowSeesTheResultSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := newQueue(t)
		id := NewID(time.Now())
		start := time.Now()
		go func() {
			time.Sleep(time.Second + 3*time.Millisecond)
			q.WriteResult(Result{ID: id, Result: "succeeded"})
		}()
		asked := 0
		r, err := q.Follow(t.Context(), id, func(Event) {}, func() error { asked++; return nil })
		if err != nil || r.Result != "succeeded" {
			t.Fatalf("Follow = %+v, %v", r, err)
		}
		if took := time.Since(start); took > time.Second+13*time.Millisecond {
			t.Errorf("Follow returned %s after start, the result was written at 1.003s (want within 10ms)", took)
		}
		if asked < 9 || asked > 12 {
			t.Errorf("alive asked %d times in 1s, want about every %s", asked, followAlive)
		}
	})
}
