package chat

import (
	"bufio"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Timing of a connection (docs/protocol.md: ping every 25 s, drop after 60 s of silence).
const (
	// helloWait is how long a new connection may take to send its hello.
	helloWait = 10 * time.Second
	// pongWait is how long a connection may stay silent (no frame, no pong).
	pongWait = 60 * time.Second
	// pingPeriod must be well below pongWait so a live client always answers in time.
	pingPeriod = 25 * time.Second
	// writeWait bounds every write, so a stuck peer cannot pin a writer forever.
	writeWait = 10 * time.Second
	// closeGrace is how long we wait for the peer's close frame after sending ours.
	closeGrace = 2 * time.Second
	// maxQueue bounds the frames waiting for one connection; a client that falls
	// this far behind is closed with 1013 and resumes.
	maxQueue = 256
)

// Close codes used by the server.
const (
	CloseServiceRestart = websocket.CloseServiceRestart // 1012: drain, retry after retry_ms
	CloseTryAgainLater  = websocket.CloseTryAgainLater  // 1013: overloaded or too slow
)

// client is one WebSocket connection. The reader (serve) runs in a goroutine
// of its own that ServeHTTP starts after the upgrade (the handler returns, so
// net/http frees its per-connection state). Writes happen in a writer
// goroutine started on demand and ending when the queue is empty, so an idle
// connection costs one goroutine, not two.
type client struct {
	hub  *Hub
	conn *websocket.Conn
	bc   *batchConn // conn's transport, for batched writes
	// br is conn's read buffer (gorilla reads through it), so a move can
	// carry the bytes read from the socket but not consumed yet.
	br *bufio.Reader
	// movable is true for a connection that came in over a unix socket: only
	// those can be passed to another process.
	movable  bool
	log      *slog.Logger
	roomName string
	name     string
	sid      string
	room     *room // set by join while holding the room's lock
	// helloWait is how long the first frame may take.
	helloWait time.Duration
	// pingPeriod and pongWait are the keepalive timing, from the Handler.
	pingPeriod, pongWait time.Duration

	mu          sync.Mutex
	queue       [][]byte
	spare       [][]byte // the writer's previous batch, reused to avoid garbage
	writing     bool     // a writer goroutine exists (running or lingering)
	parked      bool     // the writer lingers waiting for wake
	wake        chan struct{}
	closing     bool // a close frame is queued; nothing else will be sent
	closeCode   int
	closeReason string
	dead        bool // the connection failed or is closed
	// frozen holds the writer while the connection is being passed to the
	// next process: frames queue up but nothing is written.
	frozen bool
	// flushed, when set, is closed by the writer once the queue is written
	// (a move waits for it before passing the connection).
	flushed chan struct{}
	// mv is the move in progress, set by Hub.Hold once hold was queued.
	mv *moveState
	// joined is set once the client is in its room and may be moved.
	joined bool

	// pingMu keeps a keepalive ping from being written while the connection
	// is handed over: ping holds it across its check and write.
	pingMu sync.Mutex
	pinger *time.Timer
}

// enqueue queues frame for the writer. A client whose queue is full is closed
// with 1013: it resumes, which is cheaper than an unbounded queue.
func (c *client) enqueue(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing || c.dead {
		return
	}
	if len(c.queue) >= maxQueue {
		c.queue = nil
		c.hub.metrics.Drops.WithLabelValues("slow_consumer").Inc()
		c.closeLocked(CloseTryAgainLater, retryReason(0, 1000))
		return
	}
	c.queue = append(c.queue, frame)
	c.startWriterLocked()
}

// close queues a close frame with code and reason after the frames already queued.
func (c *client) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason)
}

func (c *client) closeLocked(code int, reason string) {
	if c.closing || c.dead {
		return
	}
	c.closing = true
	c.closeCode, c.closeReason = code, reason
	c.startWriterLocked()
}

func (c *client) startWriterLocked() {
	if c.dead || c.frozen {
		return
	}
	if c.writing {
		if c.parked {
			c.parked = false
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		return
	}
	c.writing = true
	if c.wake == nil {
		c.wake = make(chan struct{}, 1)
	}
	go c.writeLoop()
}

// writeLoop is the only goroutine that writes data frames; it exits when the
// queue is empty. Pings use WriteControl, which gorilla allows concurrently.
func (c *client) writeLoop() {
	idleTicks := 0
	for {
		c.mu.Lock()
		if c.dead {
			c.writing = false
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = c.spare[:0]
		c.spare = nil
		sendClose := len(batch) == 0 && c.closing && c.closeCode != 0
		code, reason := c.closeCode, c.closeReason
		if sendClose {
			c.closeCode = 0 // sent once
		}
		if len(batch) == 0 && !sendClose && c.flushed != nil {
			// Everything owed is written: a move may take the connection.
			close(c.flushed)
			c.flushed = nil
			c.writing = false
			c.queue = nil
			c.mu.Unlock()
			return
		}
		if len(batch) == 0 && !sendClose {
			// Linger a little before exiting: under steady traffic the next
			// frame comes soon, and a fresh goroutine per frame burst would
			// pay for its stack growth every time.
			if idleTicks >= writerLinger {
				c.writing = false
				c.queue = nil
				c.mu.Unlock()
				return
			}
			c.parked = true
			c.mu.Unlock()
			tick := c.hub.clock.wait()
			select {
			case <-c.wake:
				idleTicks = 0
			case <-tick:
				idleTicks++
			}
			c.hub.clock.done()
			c.mu.Lock()
			c.parked = false
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		c.bc.begin()
		if err := c.conn.SetWriteDeadline(time.Now().Add(writeWait)); err != nil {
			c.fail()
			return
		}
		for _, f := range batch {
			if err := c.conn.WriteMessage(websocket.TextMessage, f); err != nil {
				c.fail()
				return
			}
		}
		if sendClose {
			msg := websocket.FormatCloseMessage(code, reason)
			if err := c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait)); err != nil {
				c.fail()
				return
			}
		}
		if err := c.bc.flush(); err != nil {
			c.fail()
			return
		}
		// Keep the batch's array for the next one unless a burst grew it.
		if cap(batch) <= 64 {
			clear(batch)
			c.mu.Lock()
			c.spare = batch[:0]
			c.mu.Unlock()
		}
		if sendClose {
			// The reader ends when the peer answers our close; if it never
			// does, drop the connection after a grace period.
			time.AfterFunc(closeGrace, func() { _ = c.conn.Close() })
		}
	}
}

// fail marks the connection dead and closes it; the reader then ends, and
// a lingering writer exits.
func (c *client) fail() {
	c.mu.Lock()
	c.dead = true
	c.queue, c.spare = nil, nil
	if c.parked {
		c.parked = false
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	_ = c.conn.Close()
}

// ping sends a keepalive ping and re-arms itself until the connection is dead.
func (c *client) ping() {
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	c.mu.Lock()
	stop := c.dead || c.frozen
	c.mu.Unlock()
	if stop {
		return
	}
	if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
		if !errors.Is(err, websocket.ErrCloseSent) {
			c.fail()
		}
		return
	}
	c.pinger.Reset(c.pingPeriod)
}

// writerLinger is how many lingerClock ticks an idle writer waits for more
// frames before its goroutine exits.
const writerLinger = 2

// lingerTick is the period of the shared clock idle writers wait on.
const lingerTick = 500 * time.Millisecond

// lingerClock is one shared ticker for lingering writers, so waiting costs
// no timer per connection. It runs only while someone waits.
type lingerClock struct {
	mu      sync.Mutex
	ch      chan struct{}
	waiters int
	armed   bool
}

// wait registers a waiter and returns a channel closed at the next tick;
// call done afterwards.
func (l *lingerClock) wait() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiters++
	if l.ch == nil {
		l.ch = make(chan struct{})
	}
	if !l.armed {
		l.armed = true
		time.AfterFunc(lingerTick, l.fire)
	}
	return l.ch
}

func (l *lingerClock) done() {
	l.mu.Lock()
	l.waiters--
	l.mu.Unlock()
}

func (l *lingerClock) fire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	close(l.ch)
	l.ch = make(chan struct{})
	if l.waiters > 0 {
		time.AfterFunc(lingerTick, l.fire)
		return
	}
	l.armed = false
}

// rateLimiter allows at most rateLimit sends in any rateWindow.
type rateLimiter struct {
	times [rateLimit]time.Time
	next  int
}

const (
	rateLimit  = 10
	rateWindow = 2 * time.Second
)

// allow records a send at now, or returns how long to wait when the send
// would be the (rateLimit+1)th within rateWindow.
func (l *rateLimiter) allow(now time.Time) (ok bool, retry time.Duration) {
	oldest := l.times[l.next]
	if !oldest.IsZero() && now.Sub(oldest) < rateWindow {
		return false, rateWindow - now.Sub(oldest)
	}
	l.times[l.next] = now
	l.next = (l.next + 1) % rateLimit
	return true, 0
}
