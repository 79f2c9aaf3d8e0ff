package chat

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// dedupeKey identifies a send across reconnects: the session and the client's message id.
type dedupeKey struct{ sid, cid string }

// DedupeEntry is one remembered (sid, cid) → seq of a room's dedupe window.
type DedupeEntry struct {
	SID string `json:"sid"`
	CID string `json:"cid"`
	Seq uint64 `json:"seq"`
}

// RoomState is everything a room's continuity depends on: what a successor
// needs to serve resume and dedupe exactly like its predecessor.
type RoomState struct {
	Epoch   string        `json:"epoch"`
	Seq     uint64        `json:"seq"`
	History []Message     `json:"history"`
	Dedupe  []DedupeEntry `json:"dedupe"`
}

// entry is a history message with its client frame encoded once, so replays
// and broadcasts share the bytes.
type entry struct {
	msg   Message
	frame []byte
}

// roomSet is the hub's map of rooms. Its mu is held only inside its own
// methods, which call nothing else, so it nests under the sequencer's lock and
// above every room's.
type roomSet struct {
	mu      sync.Mutex
	rooms   map[string]*room
	epoch   string // epoch of rooms created here
	history int    // messages each room keeps
	window  int    // dedupe entries each room keeps
	gauge   prometheus.Gauge
}

// get returns the room or nil.
func (s *roomSet) get(name string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[name]
}

// getOrCreate returns the named room, creating it under epoch (empty: the
// set's own epoch, for rooms this hub is the authority of) unless MaxRooms
// exist already.
func (s *roomSet) getOrCreate(name, epoch string) (r *room, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.rooms[name]; ok {
		return r, false, nil
	}
	if len(s.rooms) >= MaxRooms {
		return nil, false, ErrTooManyRooms
	}
	if epoch == "" {
		epoch = s.epoch
	}
	r = newRoom(name, epoch, s.history, s.window)
	s.rooms[name] = r
	s.gauge.Set(float64(len(s.rooms)))
	return r, true, nil
}

// all returns every room.
func (s *roomSet) all() []*room {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		out = append(out, r)
	}
	return out
}

// renew gives the set a fresh epoch and returns it with every room, which the
// caller moves to it.
func (s *roomSet) renew() (string, []*room) {
	s.mu.Lock()
	s.epoch = NewEpoch()
	epoch := s.epoch
	s.mu.Unlock()
	return epoch, s.all()
}

// room is one chat room's replica: epoch, seq, bounded history, the dedupe
// window and the local connections. Every field but name is guarded by mu,
// and only lockedRoom's methods touch them.
type room struct {
	name string

	mu      sync.Mutex
	epoch   string
	seq     uint64
	limit   int     // messages kept for resume
	hist    []entry // the last limit entries are kept; trimmed in batches
	window  int     // dedupe entries kept
	dedupe  map[dedupeKey]uint64
	dorder  []dedupeKey
	clients map[*client]struct{}
	// changed is closed and replaced whenever seq or epoch changes, so resumes
	// on a replica can wait for replication to catch up.
	changed chan struct{}
	// presencePending is true while a coalesced presence broadcast is scheduled.
	presencePending bool
	// others counts the room's members on other instances (shared rooms); 0 otherwise.
	others int
}

// lockedRoom is a room whose mu the holder has locked: the only way to read
// or change a room's state. Get one with room.lock and unlock it when done;
// take it after the sequencer's lock and roomSet's, before any client's.
type lockedRoom struct{ *room }

func (r *room) lock() lockedRoom {
	r.mu.Lock()
	return lockedRoom{r}
}

func (r lockedRoom) unlock() { r.mu.Unlock() }

// online is the room's member count as clients see it.
func (r lockedRoom) online() int { return len(r.clients) + r.others }

func newRoom(name, epoch string, limit, window int) *room {
	return &room{
		name:    name,
		epoch:   epoch,
		limit:   limit,
		window:  window,
		dedupe:  make(map[dedupeKey]uint64),
		clients: make(map[*client]struct{}),
		changed: make(chan struct{}),
	}
}

// kept returns the history kept for resume, oldest first.
func (r lockedRoom) kept() []entry {
	if len(r.hist) > r.limit {
		return r.hist[len(r.hist)-r.limit:]
	}
	return r.hist
}

// append records m (whose Seq must be r.seq+1) and returns its entry.
func (r lockedRoom) append(m Message) entry {
	e := entry{msg: m, frame: m.frame()}
	r.seq = m.Seq
	// Trim only when twice the limit is reached, so appends stay amortised O(1).
	if len(r.hist) >= 2*r.limit {
		n := copy(r.hist, r.hist[len(r.hist)-r.limit:])
		clear(r.hist[n:])
		r.hist = r.hist[:n]
	}
	r.hist = append(r.hist, e)
	r.remember(dedupeKey{m.SID, m.CID}, m.Seq)
	r.notify()
	return e
}

func (r lockedRoom) remember(k dedupeKey, seq uint64) {
	if _, ok := r.dedupe[k]; ok {
		return
	}
	if len(r.dorder) >= 2*r.window {
		drop := len(r.dorder) - r.window + 1
		for _, old := range r.dorder[:drop] {
			delete(r.dedupe, old)
		}
		n := copy(r.dorder, r.dorder[drop:])
		clear(r.dorder[n:])
		r.dorder = r.dorder[:n]
	}
	r.dedupe[k] = seq
	r.dorder = append(r.dorder, k)
}

func (r lockedRoom) notify() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// replay decides a resume: ok with exactly the messages after lastSeq when
// the client's epoch is current and all of them are still kept, else reset
// with the last ResetReplay messages. Never a partial replay.
func (r lockedRoom) replay(h *Hello) (resume string, frames [][]byte) {
	kept := r.kept()
	if h.Resume && h.Epoch == r.epoch && h.LastSeq <= r.seq {
		first := r.seq + 1 // seq of the oldest kept message
		if len(kept) > 0 {
			first = kept[0].msg.Seq
		}
		if h.LastSeq+1 >= first {
			start := len(kept) - int(r.seq-h.LastSeq)
			for _, e := range kept[start:] {
				frames = append(frames, e.frame)
			}
			return "ok", frames
		}
	}
	start := max(0, len(kept)-ResetReplay)
	for _, e := range kept[start:] {
		frames = append(frames, e.frame)
	}
	return "reset", frames
}

// state copies the room's continuity state.
func (r lockedRoom) state() RoomState {
	kept := r.kept()
	st := RoomState{Epoch: r.epoch, Seq: r.seq, History: make([]Message, len(kept))}
	for i, e := range kept {
		st.History[i] = e.msg
	}
	keys := r.dorder
	if len(keys) > r.window {
		keys = keys[len(keys)-r.window:]
	}
	st.Dedupe = make([]DedupeEntry, 0, len(keys))
	for _, k := range keys {
		st.Dedupe = append(st.Dedupe, DedupeEntry{SID: k.sid, CID: k.cid, Seq: r.dedupe[k]})
	}
	return st
}

// install replaces the room's state with st and returns the frames local
// clients have not seen yet (when st continues the current history), or
// continuous=false when they must resume from scratch.
func (r lockedRoom) install(st RoomState) (missed [][]byte, continuous bool) {
	oldEpoch, oldSeq := r.epoch, r.seq
	r.epoch, r.seq = st.Epoch, st.Seq
	hist := st.History
	if len(hist) > r.limit {
		hist = hist[len(hist)-r.limit:]
	}
	r.hist = make([]entry, 0, len(hist))
	for _, m := range hist {
		e := entry{msg: m, frame: m.frame()}
		r.hist = append(r.hist, e)
		if m.Seq > oldSeq && st.Epoch == oldEpoch {
			missed = append(missed, e.frame)
		}
	}
	clear(r.dedupe)
	r.dorder = r.dorder[:0]
	for _, d := range st.Dedupe {
		r.remember(dedupeKey{d.SID, d.CID}, d.Seq)
	}
	for _, m := range hist {
		r.remember(dedupeKey{m.SID, m.CID}, m.Seq)
	}
	continuous = st.Epoch == oldEpoch && st.Seq >= oldSeq &&
		(st.Seq == oldSeq || (len(hist) > 0 && hist[0].Seq <= oldSeq+1))
	r.notify()
	return missed, continuous
}
