package chat

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// sequencer decides who accepts messages (this hub, or a Remote) and orders
// appends against followers and draining. Its mu is the hub's outermost lock:
// local appends and room creation hold it for reading; Follow, Drain and
// Promote for writing, so a follower sees a snapshot and then every later
// change, and Drain returns only once no append is in flight.
type sequencer struct {
	mu        sync.RWMutex
	followers map[int]func(Event)
	nextID    int
	draining  bool

	// remote is read without mu: a send in flight keeps the authority it
	// started with.
	remote atomic.Pointer[remoteBox]
}

type remoteBox struct{ r Remote }

// seqHeld is proof that the caller holds sequencer.mu (for reading or
// writing). Get one from rlock or lock and unlock it when done; methods that
// need the lock take it as a parameter.
type seqHeld struct {
	s     *sequencer
	write bool
}

// rlock takes the sequencer's lock for reading: the first lock of an append
// or a room creation.
func (s *sequencer) rlock() seqHeld {
	s.mu.RLock()
	return seqHeld{s: s}
}

// lock takes the sequencer's lock for writing: the first lock of Follow,
// Drain and Promote.
func (s *sequencer) lock() seqHeld {
	s.mu.Lock()
	return seqHeld{s: s, write: true}
}

func (g seqHeld) unlock() {
	if g.write {
		g.s.mu.Unlock()
		return
	}
	g.s.mu.RUnlock()
}

// emit reports ev to the followers. It needs the sequencer's lock (so no
// Follow attaches halfway) and the room's (so the room's events stay in seq
// order); followers must not block.
func (s *sequencer) emit(_ seqHeld, _ lockedRoom, ev Event) {
	for _, f := range s.followers {
		f(ev)
	}
}

func (s *sequencer) setRemote(r Remote) {
	if r == nil {
		s.remote.Store(nil)
		return
	}
	s.remote.Store(&remoteBox{r})
}

func (s *sequencer) getRemote() Remote {
	if b := s.remote.Load(); b != nil {
		return b.r
	}
	return nil
}

// Authority is the hub as the authority of its rooms: it creates rooms,
// sequences and dedupes messages, and streams every change to followers. A
// handover primary serves its standby through it. Get one from Hub.Authority;
// the zero value is not usable.
type Authority struct{ h *Hub }

// Authority returns the hub's authority view.
func (h *Hub) Authority() Authority { return Authority{h} }

// Open makes sure the room exists in this hub as authority; a replica calls it
// (through its Remote) on behalf of its clients. It fails with ErrDraining
// while the hub is not the authority or drains.
func (a Authority) Open(name string) error {
	h := a.h
	if !ValidRoom(name) {
		return fmt.Errorf("open room %q: %w", name, ErrUnknownRoom)
	}
	// A draining authority creates no rooms: its successor would never hear of them.
	if h.seq.getRemote() != nil || h.Draining() {
		return fmt.Errorf("open room %s: not accepting: %w", name, ErrDraining)
	}
	_, err := h.open(context.Background(), name)
	return err
}

// Append accepts m as the authority of the room. It returns the message's
// seq, or the original seq when (m.SID, m.CID) was accepted before (dup is
// then true). It fails with ErrDraining while the hub is not the authority or
// drains.
func (a Authority) Append(name string, m Message) (seq uint64, dup bool, err error) {
	h := a.h
	if err := m.Validate(); err != nil {
		return 0, false, err
	}
	r, err := h.open(context.Background(), name)
	if err != nil {
		return 0, false, err
	}
	g := h.seq.rlock()
	defer g.unlock()
	if h.seq.draining || h.seq.getRemote() != nil {
		return 0, false, ErrDraining
	}
	lr := r.lock()
	defer lr.unlock()
	if s, ok := lr.dedupe[dedupeKey{m.SID, m.CID}]; ok {
		h.metrics.Duplicates.Inc()
		return s, true, nil
	}
	m.Seq = lr.seq + 1
	m.TS = time.Now().UnixMilli()
	e := lr.append(m)
	h.seq.emit(g, lr, Event{Room: name, Msg: &e.msg})
	h.broadcast(lr, e.frame)
	h.metrics.Messages.Inc()
	return m.Seq, false, nil
}

// Follow calls f with a State event for every room and then with every later
// change, until cancel is called. f runs with the sequencer and the room
// locked: it must not block or call back into the hub.
func (a Authority) Follow(f func(Event)) (cancel func()) {
	s := &a.h.seq
	g := s.lock()
	defer g.unlock()
	for _, r := range a.h.rooms.all() {
		lr := r.lock()
		st := lr.state()
		lr.unlock()
		f(Event{Room: r.name, State: &st})
	}
	id := s.nextID
	s.nextID++
	s.followers[id] = f
	return func() {
		g := s.lock()
		defer g.unlock()
		delete(s.followers, id)
	}
}
