package chat

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// registry is every open connection, with or without a room, so CloseAll
// reaches those still before their hello. Its mu is a leaf: nothing is
// called while it is held.
type registry struct {
	mu      sync.Mutex
	conns   map[*client]struct{}
	closing bool
	n       atomic.Int64
}

// register adds c to the hub's connections; it fails once CloseAll started.
func (h *Hub) register(c *client) bool {
	r := &h.conns
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	r.conns[c] = struct{}{}
	r.n.Add(1)
	h.metrics.Connections.Inc()
	return true
}

func (h *Hub) unregister(c *client) {
	r := &h.conns
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.conns, c)
	r.n.Add(-1)
	h.metrics.Connections.Dec()
}

// CloseAll closes every connection with 1012 and a retry_ms spread over
// window, then waits until they are gone or ctx ends.
func (h *Hub) CloseAll(ctx context.Context, window time.Duration) error {
	win := max(1, window.Milliseconds())
	r := &h.conns
	r.mu.Lock()
	r.closing = true
	conns := make([]*client, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.close(CloseServiceRestart, retryReason(100, 100+win))
	}
	// Poll rather than WaitGroup.Wait: upgrades may still be finishing
	// concurrently, and WaitGroup forbids Add during Wait.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for r.n.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("close connections (%d left): %w", r.n.Load(), ctx.Err())
		}
	}
	return nil
}

// Connections returns the number of open WebSocket connections.
func (h *Hub) Connections() int { return int(h.conns.n.Load()) }
