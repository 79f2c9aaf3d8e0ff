package chat

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Tuning of the hub.
const (
	// DefaultHistory is how many messages a room keeps for resume when CHAT_HISTORY is unset.
	DefaultHistory = 200
	// dedupeWindowMin is the least number of (sid, cid) pairs a room remembers;
	// clients resend at most their unacked outbox, so this is generous.
	dedupeWindowMin = 1024
	// MaxRooms bounds memory: each room keeps its history and dedupe window.
	MaxRooms = 1000
	// presenceDelay coalesces presence updates: a wave of joins costs one
	// broadcast instead of one per join (N² frames).
	presenceDelay = 300 * time.Millisecond
	// resumeWait bounds how long a replica waits for replication to reach a
	// resuming client's last_seq before answering.
	resumeWait = 2 * time.Second
)

// DedupeWindow is how many (sid, cid) pairs a room keeping history messages
// remembers. Every room store (this hub, Redis) uses it, so a send is deduped
// the same wherever the room lives.
func DedupeWindow(history int) int { return max(dedupeWindowMin, 4*history) }

// Errors of Hub operations.
var (
	// ErrDraining means the hub (or the authority it forwards to) no longer accepts messages.
	ErrDraining = errors.New("draining")
	// ErrTooManyRooms means MaxRooms rooms exist already.
	ErrTooManyRooms = errors.New("too many rooms")
	// ErrGap means a replicated message does not directly follow the room's seq.
	ErrGap = errors.New("replication gap")
	// ErrUnknownRoom means the room is not in this hub's replica.
	ErrUnknownRoom = errors.New("unknown room")
	// ErrBadState means a replicated room state is inconsistent.
	ErrBadState = errors.New("inconsistent room state")
)

// Remote is a room authority outside this process: the seam where room storage
// plugs in. When a Hub has a Remote (Replica.SetRemote), it does not sequence
// messages itself; it keeps a replica of each room and the Remote feeds it:
//
//   - Open(ctx, room) must make the room known locally before it returns, by
//     calling Replica.Install with the room's state (creating the room at the
//     authority if it is new). It is called when a client joins a room this hub
//     does not hold yet.
//   - Append(ctx, room, m) asks the authority to accept m (Seq and TS unset):
//     dedupe (m.SID, m.CID) against the room's window, assign the next seq and
//     a timestamp, and return the seq, or the original seq for a duplicate. It
//     returns an error wrapping ErrDraining when the authority refuses for now.
//
// Every accepted message, from any instance, must reach every hub holding the
// room through Replica.Apply, in seq order; package replica holds those
// rules once for both implementations, the unix socket handover (package
// handover) and a shared store (CHAT_REDIS_URL). Implementations must be safe
// for concurrent use.
type Remote interface {
	Open(ctx context.Context, room string) error
	Append(ctx context.Context, room string, m Message) (seq uint64, err error)
}

// PresenceSharer is implemented by a Remote whose rooms span instances
// (CHAT_REDIS_URL): "online" then counts a room's members on every instance.
// The hub reports its own count of a room whenever it changed (coalesced, from
// under the room's lock, so ReportPresence must not block or call the hub);
// the sharer tells the hub the other instances' total through
// Replica.SetOthersOnline.
type PresenceSharer interface {
	ReportPresence(room string, local int)
}

// Event is one change of a room, reported to followers: either a full State
// (a snapshot or a new room) or one appended Msg.
type Event struct {
	Room  string
	State *RoomState
	Msg   *Message
}

// Config configures a Hub. Zero values take the documented defaults.
type Config struct {
	// History is how many messages each room keeps for resume; 0 means DefaultHistory.
	History int
	// Color and Version are reported in welcome frames.
	Color, Version string
	// Logger receives the hub's logs; nil discards them.
	Logger *slog.Logger
	// Metrics are updated when non-nil.
	Metrics *Metrics
}

// Hub holds the rooms of this process and the connections in them. It is
// made of parts with one job each, and their locks nest in one order,
// outermost first; a goroutine holding one may take only those below it:
//
//	sequencer.mu  who accepts messages, and the followers (seqHeld)
//	roomSet.mu    the map of rooms; held only inside roomSet's methods
//	room.mu       one room's state and members (lockedRoom)
//	client.mu     one connection's queue (enqueue, close)
//
// registry.mu (every connection, for CloseAll), lingerClock.mu and
// openCalls.mu are leaves: nothing else is taken under them. The types seqHeld and lockedRoom are the
// proof a method asks for when it needs a lock held.
//
// Other packages see the hub through two narrow views: Authority (serve
// rooms as their authority, e.g. to a handover standby) and Replica (keep a
// copy fed by a Remote). The zero value is not usable; call NewHub.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	seq   sequencer
	rooms roomSet
	conns registry
	clock lingerClock
	opens openCalls
}

// NewHub returns a hub that sequences messages itself under a fresh epoch.
func NewHub(cfg Config) *Hub {
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	h := &Hub{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics}
	h.seq.followers = make(map[int]func(Event))
	h.rooms = roomSet{
		rooms: make(map[string]*room), epoch: NewEpoch(),
		history: cfg.History, window: DedupeWindow(cfg.History), gauge: cfg.Metrics.Rooms,
	}
	h.conns.conns = make(map[*client]struct{})
	return h
}

// NewEpoch returns a fresh random epoch name.
func NewEpoch() string {
	var b [6]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// Drain stops this hub from accepting messages: later local appends fail with
// ErrDraining. When Drain returns, no append is in flight, so a follower has
// seen every accepted message.
func (h *Hub) Drain() {
	g := h.seq.lock()
	defer g.unlock()
	h.seq.draining = true
}

// Draining reports whether Drain was called.
func (h *Hub) Draining() bool {
	g := h.seq.rlock()
	defer g.unlock()
	return h.seq.draining
}

// append accepts a client's message: through the Remote when there is one,
// otherwise as the authority. It returns the message's seq, or the original
// seq when (m.SID, m.CID) was accepted before.
func (h *Hub) append(ctx context.Context, name string, m Message) (seq uint64, err error) {
	if h.Draining() {
		return 0, ErrDraining
	}
	if rem := h.seq.getRemote(); rem != nil {
		return rem.Append(ctx, name, m)
	}
	seq, _, err = h.Authority().Append(name, m)
	return seq, err
}

// open returns the named room, creating it (as authority) or fetching it
// (through the Remote) when it is not held yet.
func (h *Hub) open(ctx context.Context, name string) (*room, error) {
	if r := h.rooms.get(name); r != nil {
		return r, nil
	}
	if rem := h.seq.getRemote(); rem != nil {
		if err := h.opens.do(ctx, name, rem.Open); err != nil {
			return nil, fmt.Errorf("open room %s: %w", name, err)
		}
		if r := h.rooms.get(name); r != nil {
			return r, nil
		}
		return nil, fmt.Errorf("open room %s: %w", name, ErrUnknownRoom)
	}
	g := h.seq.rlock()
	defer g.unlock()
	r, created, err := h.rooms.getOrCreate(name, "")
	if err != nil {
		return nil, err
	}
	if created {
		lr := r.lock()
		st := lr.state()
		h.seq.emit(g, lr, Event{Room: name, State: &st})
		lr.unlock()
	}
	return r, nil
}

// openCalls shares one Remote.Open among the joins that find the same room
// not held yet. A deploy moves many clients of a room to a color that holds
// none of them, and a reconnect wave brings them back at once; each Open
// fetches the room's whole history from the store and installs it, so one
// Open per client made every one of them wait for all the others (with Redis
// rooms, most of a move's time).
type openCalls struct {
	mu    sync.Mutex
	calls map[string]*openCall
}

type openCall struct {
	done chan struct{}
	err  error
}

// do calls open for room, or, when a call for room is already running,
// waits for that one and returns its error. ctx bounds this caller's wait;
// the call itself runs under the ctx of the caller that started it (every
// join gives the same timeout).
func (o *openCalls) do(ctx context.Context, room string, open func(context.Context, string) error) error {
	o.mu.Lock()
	if c, ok := o.calls[room]; ok {
		o.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &openCall{done: make(chan struct{})}
	if o.calls == nil {
		o.calls = make(map[string]*openCall)
	}
	o.calls[room] = c
	o.mu.Unlock()
	c.err = open(ctx, room)
	o.mu.Lock()
	delete(o.calls, room)
	o.mu.Unlock()
	close(c.done)
	return c.err
}

// broadcast queues frame for every local client of r.
func (h *Hub) broadcast(r lockedRoom, frame []byte) {
	for c := range r.clients {
		c.enqueue(frame)
	}
	h.metrics.Deliveries.Add(float64(len(r.clients)))
}

// join registers c in its room after answering its hello: welcome, the replay
// and resumed are queued before any later broadcast, so the client sees every
// seq once and in order.
func (h *Hub) join(ctx context.Context, c *client, hello *Hello) error {
	r, err := h.open(ctx, c.roomName)
	if err != nil {
		return err
	}
	if err := h.waitFor(ctx, r, hello); err != nil {
		return err
	}
	lr := r.lock()
	defer lr.unlock()
	resume, frames := lr.replay(hello)
	lr.clients[c] = struct{}{}
	c.room = r
	c.setJoined()
	c.enqueue(mustJSON(welcomeFrame{
		T: "welcome", Epoch: lr.epoch, Seq: lr.seq, Resume: resume,
		Color: h.cfg.Color, Version: h.cfg.Version, Online: lr.online(),
	}))
	for _, f := range frames {
		c.enqueue(f)
	}
	c.enqueue(mustJSON(seqFrame{T: "resumed", Seq: lr.seq}))
	h.metrics.Resumes.WithLabelValues(resume).Inc()
	h.schedulePresence(lr)
	return nil
}

// waitFor lets a replica, which may lag behind the authority the client last
// talked to, catch up (bounded by resumeWait) with the client's last_seq.
func (h *Hub) waitFor(ctx context.Context, r *room, hello *Hello) error {
	if h.seq.getRemote() == nil || !hello.Resume {
		return nil
	}
	deadline := time.NewTimer(resumeWait)
	defer deadline.Stop()
	for {
		lr := r.lock()
		behind := hello.Epoch == lr.epoch && hello.LastSeq > lr.seq
		ch := lr.changed
		lr.unlock()
		if !behind {
			return nil
		}
		select {
		case <-ch:
		case <-deadline.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// leave removes c from its room.
func (h *Hub) leave(c *client) {
	if c.room == nil {
		return
	}
	lr := c.room.lock()
	defer lr.unlock()
	if _, ok := lr.clients[c]; ok {
		delete(lr.clients, c)
		h.schedulePresence(lr)
	}
}

// schedulePresence broadcasts the room's member count after presenceDelay,
// once however many joins and leaves happen meanwhile, and reports it to a
// PresenceSharer.
func (h *Hub) schedulePresence(r lockedRoom) {
	if r.presencePending {
		return
	}
	r.presencePending = true
	time.AfterFunc(presenceDelay, func() {
		lr := r.room.lock()
		defer lr.unlock()
		lr.presencePending = false
		h.broadcast(lr, mustJSON(presenceFrame{T: "presence", Online: lr.online()}))
		if p, ok := h.seq.getRemote().(PresenceSharer); ok {
			p.ReportPresence(lr.name, len(lr.clients))
		}
	})
}

// retryReason formats a 1012/1013 close reason with a random retry_ms in [lo, hi).
func retryReason(lo, hi int64) string {
	return fmt.Sprintf(`{"retry_ms":%d}`, lo+rand.Int64N(max(1, hi-lo)))
}
