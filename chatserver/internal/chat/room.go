package chat

import (
	"sync"
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

// room is one chat room's replica: epoch, seq, bounded history, the dedupe
// window and the local connections. Every field is guarded by mu; methods
// whose names end in Locked expect the caller to hold it.
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

// onlineLocked is the room's member count as clients see it.
func (r *room) onlineLocked() int { return len(r.clients) + r.others }

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

// keptLocked returns the history kept for resume, oldest first.
func (r *room) keptLocked() []entry {
	if len(r.hist) > r.limit {
		return r.hist[len(r.hist)-r.limit:]
	}
	return r.hist
}

// appendLocked records m (whose Seq must be r.seq+1) and returns its entry.
func (r *room) appendLocked(m Message) entry {
	e := entry{msg: m, frame: m.frame()}
	r.seq = m.Seq
	// Trim only when twice the limit is reached, so appends stay amortised O(1).
	if len(r.hist) >= 2*r.limit {
		n := copy(r.hist, r.hist[len(r.hist)-r.limit:])
		clear(r.hist[n:])
		r.hist = r.hist[:n]
	}
	r.hist = append(r.hist, e)
	r.rememberLocked(dedupeKey{m.SID, m.CID}, m.Seq)
	r.notifyLocked()
	return e
}

func (r *room) rememberLocked(k dedupeKey, seq uint64) {
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

func (r *room) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// replayLocked decides a resume: ok with exactly the messages after lastSeq when
// the client's epoch is current and all of them are still kept, else reset
// with the last ResetReplay messages. Never a partial replay.
func (r *room) replayLocked(h *Hello) (resume string, frames [][]byte) {
	kept := r.keptLocked()
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

// stateLocked copies the room's continuity state.
func (r *room) stateLocked() RoomState {
	kept := r.keptLocked()
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

// installLocked replaces the room's state with st and returns the frames local
// clients have not seen yet (when st continues the current history), or
// continuous=false when they must resume from scratch.
func (r *room) installLocked(st RoomState) (missed [][]byte, continuous bool) {
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
		r.rememberLocked(dedupeKey{d.SID, d.CID}, d.Seq)
	}
	for _, m := range hist {
		r.rememberLocked(dedupeKey{m.SID, m.CID}, m.Seq)
	}
	continuous = st.Epoch == oldEpoch && st.Seq >= oldSeq &&
		(st.Seq == oldSeq || (len(hist) > 0 && hist[0].Seq <= oldSeq+1))
	r.notifyLocked()
	return missed, continuous
}
