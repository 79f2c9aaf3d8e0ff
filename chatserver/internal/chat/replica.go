package chat

import "fmt"

// Replica is the hub as a copy of rooms whose authority is elsewhere (a
// Remote): the Remote installs snapshots and applies accepted messages, and
// the hub serves its clients from the copy. Get one from Hub.Replica; the
// zero value is not usable.
type Replica struct{ h *Hub }

// Replica returns the hub's replica view.
func (h *Hub) Replica() Replica { return Replica{h} }

// SetRemote makes r the authority of every room (nil: this hub sequences
// itself). Sends in flight keep the authority they started with.
func (p Replica) SetRemote(r Remote) { p.h.seq.setRemote(r) }

// Promote makes this hub the authority of its rooms. With newEpoch, continuity
// was lost (the predecessor vanished without a handover): every room starts a
// new epoch, keeping its history so clients still see recent messages after
// their reset.
func (p Replica) Promote(newEpoch bool) {
	h := p.h
	g := h.seq.lock()
	defer g.unlock()
	h.seq.setRemote(nil)
	if !newEpoch {
		return
	}
	epoch, rooms := h.rooms.renew()
	for _, r := range rooms {
		lr := r.lock()
		lr.epoch = epoch
		lr.notify()
		lr.unlock()
	}
}

// Apply records a message the Remote accepted. Its Seq must follow the room's
// seq (else ErrGap); an already applied seq is ignored.
func (p Replica) Apply(name string, m Message) error {
	h := p.h
	if err := m.Validate(); err != nil {
		return fmt.Errorf("apply to %s: %w", name, err)
	}
	r := h.rooms.get(name)
	if r == nil {
		return fmt.Errorf("apply to %s: %w", name, ErrUnknownRoom)
	}
	lr := r.lock()
	defer lr.unlock()
	if m.Seq <= lr.seq {
		return nil
	}
	if m.Seq != lr.seq+1 {
		return fmt.Errorf("apply seq %d to %s at %d: %w", m.Seq, name, lr.seq, ErrGap)
	}
	e := lr.append(m)
	h.broadcast(lr, e.frame)
	h.metrics.Messages.Inc()
	return nil
}

// Install replaces (or creates) a room's state with one from the authority.
// Local clients get the messages they missed when the new state continues
// the old one; otherwise they are closed with 1012 so they resume afresh.
func (p Replica) Install(name string, st RoomState) error {
	if !ValidRoom(name) {
		return fmt.Errorf("install %q: %w", name, ErrBadState)
	}
	if err := st.Validate(); err != nil {
		return fmt.Errorf("install %s: %w", name, err)
	}
	r, _, err := p.h.rooms.getOrCreate(name, st.Epoch)
	if err != nil {
		return err
	}
	lr := r.lock()
	defer lr.unlock()
	missed, continuous := lr.install(st)
	for c := range lr.clients {
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

// SetOthersOnline records how many members room has on other instances and,
// when that changed, tells the room's clients (coalesced like local joins).
// Unknown rooms are ignored: their count is asked for when they are opened.
func (p Replica) SetOthersOnline(room string, n int) {
	r := p.h.rooms.get(room)
	if r == nil {
		return
	}
	lr := r.lock()
	defer lr.unlock()
	if n = max(0, n); lr.others != n {
		lr.others = n
		p.h.schedulePresence(lr)
	}
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
