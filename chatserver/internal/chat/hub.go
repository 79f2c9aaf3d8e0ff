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
	"sync/atomic"
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
// plugs in. When a Hub has a Remote, it does not sequence messages itself; it
// keeps a replica of each room and the Remote feeds it:
//
//   - Open(ctx, room) must make the room known locally before it returns, by
//     calling Hub.Install with the room's state (creating the room at the
//     authority if it is new). It is called when a client joins a room this hub
//     does not hold yet.
//   - Append(ctx, room, m) asks the authority to accept m (Seq and TS unset):
//     dedupe (m.SID, m.CID) against the room's window, assign the next seq and
//     a timestamp, and return the seq, or the original seq for a duplicate. It
//     returns an error wrapping ErrDraining when the authority refuses for now.
//
// Every accepted message, from any instance, must reach every hub holding the
// room through Hub.Apply, in seq order; a gap is reported by Apply as ErrGap
// and the Remote then re-installs the room with Hub.Install. Both the unix
// socket handover (package handover) and a shared store (CHAT_REDIS_URL)
// implement it. Implementations must be safe for concurrent use.
type Remote interface {
	Open(ctx context.Context, room string) error
	Append(ctx context.Context, room string, m Message) (seq uint64, err error)
}

// PresenceSharer is implemented by a Remote whose rooms span instances
// (CHAT_REDIS_URL): "online" then counts a room's members on every instance.
// The hub reports its own count of a room whenever it changed (coalesced, from
// under the room's lock, so ReportPresence must not block); the sharer tells
// the hub the other instances' total through Hub.SetOthersOnline.
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

// Hub holds the rooms of this process and the connections in them. The zero
// value is not usable; call NewHub.
type Hub struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	mu    sync.Mutex
	rooms map[string]*room
	epoch string // epoch of rooms created here

	// seqMu orders appends against follower attachment and draining: local
	// appends and room creation hold it for reading, Follow and Drain for
	// writing, so a follower sees a snapshot and then every later change.
	seqMu     sync.RWMutex
	followers map[int]func(Event)
	nextID    int
	draining  bool

	remote atomic.Pointer[remoteBox]

	nconns atomic.Int64
	clock  lingerClock
	// conns and closing are guarded by mu: every connection, with or
	// without a room, so CloseAll reaches those still before their hello.
	conns   map[*client]struct{}
	closing bool
}

// register adds c to the hub's connections; it fails once CloseAll started.
func (h *Hub) register(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.conns[c] = struct{}{}
	h.nconns.Add(1)
	h.metrics.Connections.Inc()
	return true
}

func (h *Hub) unregister(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	h.nconns.Add(-1)
	h.metrics.Connections.Dec()
}

type remoteBox struct{ r Remote }

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
	return &Hub{
		cfg:       cfg,
		log:       cfg.Logger,
		metrics:   cfg.Metrics,
		rooms:     make(map[string]*room),
		epoch:     NewEpoch(),
		followers: make(map[int]func(Event)),
		conns:     make(map[*client]struct{}),
	}
}

// NewEpoch returns a fresh random epoch name.
func NewEpoch() string {
	var b [6]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

func (h *Hub) dedupeWindow() int { return max(dedupeWindowMin, 4*h.cfg.History) }

// SetRemote makes r the authority of every room (nil: this hub sequences
// itself). Sends in flight keep the authority they started with.
func (h *Hub) SetRemote(r Remote) {
	if r == nil {
		h.remote.Store(nil)
		return
	}
	h.remote.Store(&remoteBox{r})
}

func (h *Hub) getRemote() Remote {
	if b := h.remote.Load(); b != nil {
		return b.r
	}
	return nil
}

// Promote makes this hub the authority of its rooms. With newEpoch, continuity
// was lost (the predecessor vanished without a handover): every room starts a
// new epoch, keeping its history so clients still see recent messages after
// their reset.
func (h *Hub) Promote(newEpoch bool) {
	h.seqMu.Lock()
	defer h.seqMu.Unlock()
	h.SetRemote(nil)
	if !newEpoch {
		return
	}
	h.mu.Lock()
	h.epoch = NewEpoch()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	epoch := h.epoch
	h.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		r.epoch = epoch
		r.notifyLocked()
		r.mu.Unlock()
	}
}

// Drain stops this hub from accepting messages: later local appends fail with
// ErrDraining. When Drain returns, no append is in flight, so a follower has
// seen every accepted message.
func (h *Hub) Drain() {
	h.seqMu.Lock()
	h.draining = true
	h.seqMu.Unlock()
}

// Draining reports whether Drain was called.
func (h *Hub) Draining() bool {
	h.seqMu.RLock()
	defer h.seqMu.RUnlock()
	return h.draining
}

// Follow calls f with a State event for every room and then with every later
// change, until cancel is called. f runs with the room locked: it must not
// block or call back into the hub.
func (h *Hub) Follow(f func(Event)) (cancel func()) {
	h.seqMu.Lock()
	defer h.seqMu.Unlock()
	h.mu.Lock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		st := r.stateLocked()
		r.mu.Unlock()
		f(Event{Room: r.name, State: &st})
	}
	id := h.nextID
	h.nextID++
	h.followers[id] = f
	return func() {
		h.seqMu.Lock()
		delete(h.followers, id)
		h.seqMu.Unlock()
	}
}

// emitLocked reports ev to followers; the caller holds seqMu (read) and the room lock.
func (h *Hub) emitLocked(ev Event) {
	for _, f := range h.followers {
		f(ev)
	}
}

// lookup returns the room or nil.
func (h *Hub) lookup(name string) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[name]
}

// open returns the named room, creating it (as authority) or fetching it
// (through the Remote) when it is not held yet.
func (h *Hub) open(ctx context.Context, name string) (*room, error) {
	if r := h.lookup(name); r != nil {
		return r, nil
	}
	if rem := h.getRemote(); rem != nil {
		if err := rem.Open(ctx, name); err != nil {
			return nil, fmt.Errorf("open room %s: %w", name, err)
		}
		if r := h.lookup(name); r != nil {
			return r, nil
		}
		return nil, fmt.Errorf("open room %s: %w", name, ErrUnknownRoom)
	}
	h.seqMu.RLock()
	defer h.seqMu.RUnlock()
	h.mu.Lock()
	r, ok := h.rooms[name]
	if !ok {
		if len(h.rooms) >= MaxRooms {
			h.mu.Unlock()
			return nil, ErrTooManyRooms
		}
		r = newRoom(name, h.epoch, h.cfg.History, h.dedupeWindow())
		h.rooms[name] = r
		h.metrics.Rooms.Set(float64(len(h.rooms)))
	}
	h.mu.Unlock()
	if !ok {
		r.mu.Lock()
		st := r.stateLocked()
		h.emitLocked(Event{Room: name, State: &st})
		r.mu.Unlock()
	}
	return r, nil
}

// OpenLocal makes sure the room exists in this hub as authority and returns
// its state; an upstream replica calls it on behalf of its clients.
func (h *Hub) OpenLocal(name string) error {
	if !ValidRoom(name) {
		return fmt.Errorf("open room %q: %w", name, ErrUnknownRoom)
	}
	// A draining authority creates no rooms: its successor would never hear of them.
	if h.getRemote() != nil || h.Draining() {
		return fmt.Errorf("open room %s: not accepting: %w", name, ErrDraining)
	}
	_, err := h.open(context.Background(), name)
	return err
}

// Append accepts m into the room: through the Remote when there is one,
// otherwise here. It returns the message's seq, or the original seq when
// (m.SID, m.CID) was accepted before (dup is then true).
func (h *Hub) Append(ctx context.Context, name string, m Message) (seq uint64, dup bool, err error) {
	if h.Draining() {
		return 0, false, ErrDraining
	}
	if rem := h.getRemote(); rem != nil {
		seq, err := rem.Append(ctx, name, m)
		return seq, false, err
	}
	return h.AppendLocal(name, m)
}

// AppendLocal accepts m as the authority of the room.
func (h *Hub) AppendLocal(name string, m Message) (seq uint64, dup bool, err error) {
	if err := m.Validate(); err != nil {
		return 0, false, err
	}
	r, err := h.open(context.Background(), name)
	if err != nil {
		return 0, false, err
	}
	h.seqMu.RLock()
	defer h.seqMu.RUnlock()
	if h.draining || h.getRemote() != nil {
		return 0, false, ErrDraining
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.dedupe[dedupeKey{m.SID, m.CID}]; ok {
		h.metrics.Duplicates.Inc()
		return s, true, nil
	}
	m.Seq = r.seq + 1
	m.TS = time.Now().UnixMilli()
	e := r.appendLocked(m)
	h.emitLocked(Event{Room: name, Msg: &e.msg})
	h.broadcastLocked(r, e.frame)
	h.metrics.Messages.Inc()
	return m.Seq, false, nil
}

// Apply records a message the Remote accepted. Its Seq must follow the room's
// seq; an already applied seq is ignored.
func (h *Hub) Apply(name string, m Message) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("apply to %s: %w", name, err)
	}
	r := h.lookup(name)
	if r == nil {
		return fmt.Errorf("apply to %s: %w", name, ErrUnknownRoom)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Seq <= r.seq {
		return nil
	}
	if m.Seq != r.seq+1 {
		return fmt.Errorf("apply seq %d to %s at %d: %w", m.Seq, name, r.seq, ErrGap)
	}
	e := r.appendLocked(m)
	h.broadcastLocked(r, e.frame)
	h.metrics.Messages.Inc()
	return nil
}

// Validate checks that st is a consistent room state: a valid epoch, and a
// history of consecutive seqs that ends at Seq.
func (st *RoomState) Validate() error {
	if !validID(st.Epoch) {
		return fmt.Errorf("%w: bad epoch", ErrBadState)
	}
	if uint64(len(st.History)) > st.Seq {
		return fmt.Errorf("%w: more history than seq", ErrBadState)
	}
	for i, m := range st.History {
		want := st.Seq - uint64(len(st.History)-1-i)
		if m.Seq != want || m.Seq == 0 {
			return fmt.Errorf("%w: history seq %d, want %d", ErrBadState, m.Seq, want)
		}
	}
	for _, m := range st.History {
		if err := m.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Install replaces (or creates) a room's state with one from the authority.
// Local clients get the messages they missed when the new state continues
// the old one; otherwise they are closed with 1012 so they resume afresh.
func (h *Hub) Install(name string, st RoomState) error {
	if !ValidRoom(name) {
		return fmt.Errorf("install %q: %w", name, ErrBadState)
	}
	if err := st.Validate(); err != nil {
		return fmt.Errorf("install %s: %w", name, err)
	}
	h.mu.Lock()
	r, ok := h.rooms[name]
	if !ok {
		if len(h.rooms) >= MaxRooms {
			h.mu.Unlock()
			return ErrTooManyRooms
		}
		r = newRoom(name, st.Epoch, h.cfg.History, h.dedupeWindow())
		h.rooms[name] = r
		h.metrics.Rooms.Set(float64(len(h.rooms)))
	}
	h.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	missed, continuous := r.installLocked(st)
	for c := range r.clients {
		if !continuous {
			c.close(CloseServiceRestart, retryReason(0, 1000))
			continue
		}
		for _, f := range missed {
			c.enqueue(f)
		}
	}
	return nil
}

// broadcastLocked queues frame for every local client of r.
func (h *Hub) broadcastLocked(r *room, frame []byte) {
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
	// A replica may lag behind the authority the client last talked to: wait
	// (bounded) for replication to reach the client's last_seq.
	if h.getRemote() != nil && hello.Resume {
		deadline := time.NewTimer(resumeWait)
		defer deadline.Stop()
	wait:
		for {
			r.mu.Lock()
			behind := hello.Epoch == r.epoch && hello.LastSeq > r.seq
			ch := r.changed
			r.mu.Unlock()
			if !behind {
				break
			}
			select {
			case <-ch:
			case <-deadline.C:
				break wait
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	resume, frames := r.replayLocked(hello)
	r.clients[c] = struct{}{}
	c.room = r
	c.enqueue(mustJSON(welcomeFrame{
		T: "welcome", Epoch: r.epoch, Seq: r.seq, Resume: resume,
		Color: h.cfg.Color, Version: h.cfg.Version, Online: r.onlineLocked(),
	}))
	for _, f := range frames {
		c.enqueue(f)
	}
	c.enqueue(mustJSON(seqFrame{T: "resumed", Seq: r.seq}))
	if resume == "ok" {
		h.metrics.Resumes.WithLabelValues("ok").Inc()
	} else {
		h.metrics.Resumes.WithLabelValues("reset").Inc()
	}
	h.schedulePresenceLocked(r)
	return nil
}

// leave removes c from its room.
func (h *Hub) leave(c *client) {
	r := c.room
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.clients[c]; ok {
		delete(r.clients, c)
		h.schedulePresenceLocked(r)
	}
}

func (h *Hub) schedulePresenceLocked(r *room) {
	if r.presencePending {
		return
	}
	r.presencePending = true
	time.AfterFunc(presenceDelay, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.presencePending = false
		h.broadcastLocked(r, mustJSON(presenceFrame{T: "presence", Online: r.onlineLocked()}))
		if p, ok := h.getRemote().(PresenceSharer); ok {
			p.ReportPresence(r.name, len(r.clients))
		}
	})
}

// SetOthersOnline records how many members room has on other instances and,
// when that changed, tells the room's clients (coalesced like local joins).
// Unknown rooms are ignored: their count is asked for when they are opened.
func (h *Hub) SetOthersOnline(room string, n int) {
	h.mu.Lock()
	r := h.rooms[room]
	h.mu.Unlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n = max(0, n); r.others != n {
		r.others = n
		h.schedulePresenceLocked(r)
	}
}

// CloseAll closes every connection with 1012 and a retry_ms spread over
// window, then waits until they are gone or ctx ends.
func (h *Hub) CloseAll(ctx context.Context, window time.Duration) error {
	win := max(1, window.Milliseconds())
	h.mu.Lock()
	h.closing = true
	conns := make([]*client, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.close(CloseServiceRestart, retryReason(100, 100+win))
	}
	// Poll rather than WaitGroup.Wait: upgrades may still be finishing
	// concurrently, and WaitGroup forbids Add during Wait.
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for h.nconns.Load() > 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("close connections (%d left): %w", h.nconns.Load(), ctx.Err())
		}
	}
	return nil
}

// Connections returns the number of open WebSocket connections.
func (h *Hub) Connections() int { return int(h.nconns.Load()) }

// retryReason formats a 1012/1013 close reason with a random retry_ms in [lo, hi).
func retryReason(lo, hi int64) string {
	return fmt.Sprintf(`{"retry_ms":%d}`, lo+rand.Int64N(max(1, hi-lo)))
}
