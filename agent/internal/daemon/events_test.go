package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/deploy"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
)

// fakeEvents is a channel-backed event source: each subscription takes the next stream from
// streams (or the next error from fail first, if any), and records the labels it was asked for.
type fakeEvents struct {
	mu      sync.Mutex // guards fail, subs and labels
	fail    []error
	streams chan fakeStream
	subs    int
	labels  map[string]string
}

type fakeStream struct {
	evs  chan docker.ContainerEvent
	errc chan error
}

func (f *fakeEvents) ContainerEvents(ctx context.Context, labels map[string]string, actions ...string) (<-chan docker.ContainerEvent, <-chan error, error) {
	f.mu.Lock()
	f.subs++
	f.labels = labels
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		f.mu.Unlock()
		return nil, nil, err
	}
	f.mu.Unlock()
	select {
	case s := <-f.streams:
		return s.evs, s.errc, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}

func (f *fakeEvents) subscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

func (f *fakeEvents) label(k string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.labels[k]
}

func newStream() fakeStream {
	return fakeStream{evs: make(chan docker.ContainerEvent), errc: make(chan error, 1)}
}

// startWatcher runs a watcher of app "mywebchat" on src until the returned
// stop is called; it returns the kick channel the watcher signals on.
func startWatcher(t *testing.T, src eventSource, renamed <-chan string) (chan struct{}, func()) {
	kick := make(chan struct{}, 1)
	w := &eventWatcher{src: src, app: "mywebchat", renamed: renamed, log: slog.New(slog.DiscardHandler), kick: kick}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); w.run(ctx) }()
	return kick, func() { cancel(); <-done }
}

// kicks counts the signals waiting on kick, draining it.
func kicks(kick chan struct{}) int {
	n := 0
	for {
		select {
		case <-kick:
			n++
		default:
			return n
		}
	}
}

func TestEventWatcherDebouncesIntoOneReconcile(t *testing.T) {
	tests := []struct {
		name   string
		events []string // actions of the active container, sent back to back
	}{
		{"die of the active container", []string{"die"}},
		{"oom kill burst", []string{"oom", "die", "stop", "die", "destroy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := &fakeEvents{streams: make(chan fakeStream, 1)}
				st := newStream()
				src.streams <- st
				kick, stop := startWatcher(t, src, nil)

				start := time.Now()
				for _, a := range tt.events {
					st.evs <- docker.ContainerEvent{ID: "abc", Name: "mywebchat-blue", Action: a}
				}
				synctest.Wait()
				if n := kicks(kick); n != 0 {
					t.Fatalf("got %d reconciles before the debounce, want 0", n)
				}
				time.Sleep(eventDebounce)
				synctest.Wait()
				if n := kicks(kick); n != 1 {
					t.Fatalf("got %d reconciles after %v, want 1", n, time.Since(start))
				}
				time.Sleep(10 * eventDebounce)
				synctest.Wait()
				if n := kicks(kick); n != 0 {
					t.Fatalf("got %d more reconciles for one burst, want 0", n)
				}
				if got, want := src.label(deploy.LabelApp), "mywebchat"; got != want {
					t.Errorf("subscribed with label %s=%q, want %q", deploy.LabelApp, got, want)
				}
				stop()
			})
		})
	}
}

func TestEventWatcherResubscribesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refused := errors.New("connection refused")
		src := &fakeEvents{fail: []error{refused, refused}, streams: make(chan fakeStream, 2)}
		first, second := newStream(), newStream()
		src.streams <- first
		kick, stop := startWatcher(t, src, nil)

		// Engine down at start: two refused subscriptions, waiting 0.5 s then 1 s.
		synctest.Wait()
		if got, want := src.subscriptions(), 1; got != want {
			t.Fatalf("got %d subscriptions at start, want %d", got, want)
		}
		time.Sleep(eventBackoffMin)
		synctest.Wait()
		if got, want := src.subscriptions(), 2; got != want {
			t.Fatalf("got %d subscriptions after %v, want %d", got, eventBackoffMin, want)
		}
		time.Sleep(2*eventBackoffMin - time.Millisecond)
		synctest.Wait()
		if got, want := src.subscriptions(), 2; got != want {
			t.Fatalf("got %d subscriptions before the doubled backoff, want %d", got, want)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if got, want := src.subscriptions(), 3; got != want {
			t.Fatalf("got %d subscriptions after the doubled backoff, want %d", got, want)
		}
		// Subscribed after a gap: events may have been missed, so reconcile once.
		if n := kicks(kick); n != 1 {
			t.Fatalf("got %d reconciles after re-subscribing, want 1", n)
		}

		// Engine restart: the stream ends; the watcher comes back and still reacts to events.
		src.streams <- second
		first.errc <- io.EOF
		close(first.errc)
		time.Sleep(eventBackoffMax)
		synctest.Wait()
		if got, want := src.subscriptions(), 4; got != want {
			t.Fatalf("got %d subscriptions after the stream broke, want %d", got, want)
		}
		kicks(kick)
		second.evs <- docker.ContainerEvent{ID: "abc", Action: "die"}
		time.Sleep(eventDebounce)
		synctest.Wait()
		if n := kicks(kick); n != 1 {
			t.Fatalf("got %d reconciles for a die on the new stream, want 1", n)
		}
		stop()
	})
}

func TestEventWatcherFollowsRenamedApp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeEvents{streams: make(chan fakeStream, 2)}
		first, second := newStream(), newStream()
		src.streams <- first
		src.streams <- second
		renamed := make(chan string, 1)
		kick, stop := startWatcher(t, src, renamed)
		synctest.Wait()

		renamed <- "chat2"
		synctest.Wait()
		// At once, not after a backoff: the new name's containers are watched from now on.
		if got, want := src.subscriptions(), 2; got != want {
			t.Fatalf("got %d subscriptions after the rename, want %d", got, want)
		}
		if got := src.label(deploy.LabelApp); got != "chat2" {
			t.Errorf("subscribed with %s=%q after the rename, want chat2", deploy.LabelApp, got)
		}
		kicks(kick)
		second.evs <- docker.ContainerEvent{ID: "abc", Name: "chat2-blue", Action: "die"}
		time.Sleep(eventDebounce)
		synctest.Wait()
		if n := kicks(kick); n != 1 {
			t.Fatalf("got %d reconciles for a die under the new name, want 1", n)
		}
		stop()
	})
}
