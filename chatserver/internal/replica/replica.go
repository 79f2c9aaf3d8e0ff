// Package replica keeps a chat hub's copy of rooms in step with their
// authority elsewhere: the handover primary's socket stream, or the room logs
// in Redis. Both deliver the same three things, and Feed holds their rules
// once:
//
//   - a snapshot installs a room, unless the copy already stands at that
//     point or later in the same epoch (the messages overtook the snapshot);
//   - messages follow in seq order: those already applied are skipped;
//   - a message that does not follow on (a gap, another epoch) or that the
//     hub refuses marks the room stale: it needs a fresh snapshot (resync).
//
// An authority never goes back in seq within one epoch: one that lost
// messages it had accepted must start a new epoch.
package replica

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
)

// Target is the copy a Feed keeps: chat.Replica.
type Target interface {
	Install(room string, st chat.RoomState) error
	Apply(room string, m chat.Message) error
}

// Errors of Feed.Apply.
var (
	// ErrResync means a room stopped following on and needs a fresh
	// snapshot; Stale lists it until the next Install.
	ErrResync = errors.New("room needs a fresh snapshot")
	// ErrOtherEpoch (with ErrResync) means a message of another epoch than
	// the copy's: the authority started a new history.
	ErrOtherEpoch = errors.New("message of another epoch")
)

// Position is where the copy of a room stands.
type Position struct {
	Room  string
	Epoch string
	Seq   uint64
}

// Feed applies snapshots and messages of rooms to a Target in order. Its mu
// is held while the Target changes, so a snapshot and a message of the same
// room never reach the hub out of order; it is taken before any lock of the
// hub. A Feed is safe for concurrent use.
type Feed struct {
	t Target

	mu    sync.Mutex
	rooms map[string]Position
	stale map[string]bool
}

// New returns a Feed of t holding no rooms.
func New(t Target) *Feed {
	return &Feed{t: t, rooms: make(map[string]Position), stale: make(map[string]bool)}
}

// Install installs snapshot st of room and clears the room's stale mark. It
// skips a snapshot the copy already stands at or past in the same epoch.
// newEpoch reports that the room was held under another epoch: its clients
// were closed to resume afresh.
func (f *Feed) Install(room string, st chat.RoomState) (newEpoch bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.stale, room)
	p, held := f.rooms[room]
	if held && p.Epoch == st.Epoch && p.Seq >= st.Seq {
		return false, nil
	}
	if err := f.t.Install(room, st); err != nil {
		return false, fmt.Errorf("install room %s: %w", room, err)
	}
	f.rooms[room] = Position{Room: room, Epoch: st.Epoch, Seq: st.Seq}
	return held && p.Epoch != st.Epoch, nil
}

// Apply applies m, accepted by the authority in epoch, to the copy of room.
// An empty epoch means the epoch of the room's last snapshot, for a stream
// that announces every new epoch with a snapshot. A seq already applied is
// skipped. A room never installed is an error wrapping chat.ErrUnknownRoom;
// a message of another epoch, one that does not directly follow, or one the
// Target refuses marks the room stale and is an error wrapping ErrResync.
func (f *Feed) Apply(room, epoch string, m chat.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, held := f.rooms[room]
	switch {
	case !held:
		return fmt.Errorf("apply to %s: %w", room, chat.ErrUnknownRoom)
	case epoch != "" && epoch != p.Epoch:
		f.stale[room] = true
		return fmt.Errorf("apply to %s: epoch %s, copy at %s: %w: %w", room, epoch, p.Epoch, ErrResync, ErrOtherEpoch)
	case m.Seq <= p.Seq:
		return nil
	case m.Seq != p.Seq+1:
		f.stale[room] = true
		return fmt.Errorf("apply seq %d to %s at %d: %w: %w", m.Seq, room, p.Seq, ErrResync, chat.ErrGap)
	}
	if err := f.t.Apply(room, m); err != nil {
		f.stale[room] = true
		return fmt.Errorf("%w: %w", ErrResync, err)
	}
	p.Seq = m.Seq
	f.rooms[room] = p
	return nil
}

// MarkStale marks room as needing a fresh snapshot (e.g. an entry of its log
// could not be read).
func (f *Feed) MarkStale(room string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stale[room] = true
}

// MarkAllStale marks every held room stale (e.g. the source lost data).
func (f *Feed) MarkAllStale() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for room := range f.rooms {
		f.stale[room] = true
	}
}

// Stale returns the rooms needing a fresh snapshot, sorted.
func (f *Feed) Stale() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.stale))
	for room := range f.stale {
		out = append(out, room)
	}
	slices.Sort(out)
	return out
}

// Position returns where the copy of room stands; ok is false for a room
// never installed.
func (f *Feed) Position(room string) (p Position, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok = f.rooms[room]
	return p, ok
}

// Positions returns where every held room stands, sorted by room.
func (f *Feed) Positions() []Position {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Position, 0, len(f.rooms))
	for _, p := range f.rooms {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Position) int { return strings.Compare(a.Room, b.Room) })
	return out
}
