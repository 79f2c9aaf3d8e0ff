package daemon

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/deploy"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
)

// Timing of the engine event watch.
const (
	// eventDebounce gathers the burst one crash produces (oom, die, stop, restarts) into one
	// reconcile, while keeping the outage of a killed active container well under a second of
	// extra wait.
	eventDebounce = 200 * time.Millisecond
	// eventBackoffMin and eventBackoffMax bound the wait before re-subscribing after the stream
	// broke (engine restart, socket error); the wait doubles on each failure in a row.
	eventBackoffMin = 500 * time.Millisecond
	eventBackoffMax = 30 * time.Second
	// eventStableAfter is how long a subscription must have lasted for the backoff to start
	// over, so an engine that accepts and then drops the stream at once is not hammered.
	eventStableAfter = 10 * time.Second
)

// lifecycleActions are the container events after which the served color may be gone.
var lifecycleActions = []string{"die", "stop", "oom", "destroy"}

// eventSource is the engine's container event stream (docker.Client.ContainerEvents).
type eventSource interface {
	ContainerEvents(ctx context.Context, labels map[string]string, actions ...string) (<-chan docker.ContainerEvent, <-chan error, error)
}

// eventWatcher asks for a reconcile soon after one of the app's containers dies, stops, runs out
// of memory or is removed, instead of waiting for the periodic reconcile (issue 4: a killed
// active container meant up to 30 s of failed requests). It only signals; the daemon's main loop
// runs the reconcile, the same loop that runs deploys, so a reconcile never overlaps a deploy.
// Events the agent causes itself (draining the old color, removing a failed one) lead to a
// reconcile that finds state.json and the labels already agreeing, so it changes nothing.
type eventWatcher struct {
	src eventSource
	app string
	// renamed delivers a new app.name (a live config reload): the subscription, which filters
	// on the app label, is made again at once with it.
	renamed <-chan string
	log     *slog.Logger
	// kick receives at most one pending signal: a reconcile is due. Buffered (1) by the caller;
	// a full kick already means "reconcile", so further signals are dropped.
	kick chan<- struct{}
}

// errRenamed ends a subscription made for an app name that is no longer configured.
var errRenamed = errors.New("app.name changed")

// run subscribes until ctx ends, re-subscribing with backoff when the stream breaks. After a
// re-subscription it asks for a reconcile, since events in the gap were missed.
func (w *eventWatcher) run(ctx context.Context) {
	backoff := eventBackoffMin
	resubscribed := false
	for {
		started := time.Now()
		err := w.watch(ctx, resubscribed)
		if ctx.Err() != nil {
			return
		}
		resubscribed = true
		if errors.Is(err, errRenamed) {
			w.log.Info("app.name changed; watching its containers", "app", w.app)
			continue
		}
		if time.Since(started) >= eventStableAfter {
			backoff = eventBackoffMin
		}
		w.log.Warn("docker event stream broke; re-subscribing", "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, eventBackoffMax)
	}
}

// watch runs one subscription and returns why it ended. Events are debounced by eventDebounce
// from the first one of a burst, then signalled once.
func (w *eventWatcher) watch(ctx context.Context, resubscribed bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, errc, err := w.src.ContainerEvents(ctx, map[string]string{deploy.LabelApp: w.app}, lifecycleActions...)
	if err != nil {
		return err
	}
	if resubscribed {
		w.log.Info("docker event stream re-subscribed")
		w.signal()
	}
	var due <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-evs:
			if !ok {
				evs = nil // the error follows on errc
				continue
			}
			w.log.Info("container event", "container", ev.Name, "id", ev.ID, "action", ev.Action)
			if due == nil {
				due = time.After(eventDebounce)
			}
		case <-due:
			due = nil
			w.signal()
		case name := <-w.renamed:
			w.app = name
			return errRenamed
		case err := <-errc:
			if due != nil {
				w.signal()
			}
			return err
		}
	}
}

func (w *eventWatcher) signal() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}
