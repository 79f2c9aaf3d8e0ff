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

// all returns every open connection.
func (r *registry) all() []*client {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*client, 0, len(r.conns))
	for c := range r.conns {
		out = append(out, c)
	}
	return out
}

// Reconnect spread after a drain (docs/protocol.md: retry_ms "spread over a short
// window so clients don't stampede"). The successor absorbs a few thousand
// reconnects (handshake, hello, resume) per second on a small host, so the
// window grows with the number of connections closed: a handful of clients
// are back at once, a wave of thousands still arrives spread out.
const (
	// retryFloor is the least retry_ms: the close handshake finishes first.
	retryFloor = 100 * time.Millisecond
	// reconnectCost is the window each closed connection adds.
	reconnectCost = 300 * time.Microsecond
	// minSpread is the window however few connections close.
	minSpread = 50 * time.Millisecond
)

// closeSpread is the window over which n closed connections' retry_ms are
// spread: reconnectCost each, at least minSpread, at most limit.
func closeSpread(n int, limit time.Duration) time.Duration {
	return min(limit, max(minSpread, time.Duration(n)*reconnectCost))
}

// CloseAll closes every connection with 1012 and a retry_ms of at least
// retryFloor, spread over a window sized by how many connections it closes
// (closeSpread, at most limit), then waits until they are gone or ctx ends.
func (h *Hub) CloseAll(ctx context.Context, limit time.Duration) error {
	r := &h.conns
	r.mu.Lock()
	r.closing = true
	conns := make([]*client, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	lo := retryFloor.Milliseconds()
	win := max(1, closeSpread(len(conns), limit).Milliseconds())
	for _, c := range conns {
		c.close(CloseServiceRestart, retryReason(lo, lo+win))
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
