package redisroom

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Presence spans instances: each one keeps its member count of every room it
// holds clients in under a key of its own that expires unless rewritten, and
// lists itself in the room's set of counting instances:
//
//	<prefix>presence:{name}:<instance id>   string  count, EX presenceStale
//	<prefix>presence:{name}                 set     instance ids
//
// It announces a change by publishing the room's name on <prefix>presence;
// every instance holding that room re-reads the counts and gives its hub the
// other instances' total (chat.Replica.SetOthersOnline). Counts are rewritten
// every presenceBeat; the count of an instance that died without clearing it
// expires (Redis' clock decides, so hosts' clocks need not agree) and the
// reader drops its id from the set. The same beat re-reads every held room,
// which repairs announcements missed while Redis was away.
const (
	presenceBeat  = 15 * time.Second
	presenceStale = 3 * presenceBeat
	// presenceTimeout bounds one round of presence writes and reads.
	presenceTimeout = 2 * time.Second
)

// presence is the store's side of shared counts. mu guards local and dirty.
type presence struct {
	mu    sync.Mutex
	local map[string]int  // this instance's count per room, as the hub reported it
	dirty map[string]bool // rooms whose count must be written (and re-read)
	kick  chan struct{}   // buffered (1): something is dirty
}

func newPresence() *presence {
	return &presence{local: map[string]int{}, dirty: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// ReportPresence implements chat.PresenceSharer. It only records; the
// presence loop writes, so the hub's room lock is never held across Redis.
func (s *Store) ReportPresence(room string, local int) {
	p := s.presence
	p.mu.Lock()
	if n, ok := p.local[room]; !ok || n != local {
		p.local[room] = local
		p.dirty[room] = true
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (s *Store) presenceSet(room string) string { return s.prefix + "presence:{" + room + "}" }
func (s *Store) presenceKey(room, id string) string {
	return s.prefix + "presence:{" + room + "}:" + id
}
func (s *Store) presenceChannel() string { return s.prefix + "presence" }

// runPresence writes this instance's counts and follows the others' until
// ctx ends, then clears this instance's entries (a clean exit must not leave
// members counted until they go stale).
func (s *Store) runPresence(ctx context.Context) {
	sub := s.rdb.Subscribe(ctx, s.presenceChannel())
	defer sub.Close()
	announced := sub.Channel()
	beat := time.NewTicker(presenceBeat)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			s.clearPresence()
			return
		case <-s.presence.kick:
			s.flushPresence(ctx, false)
		case <-beat.C:
			s.flushPresence(ctx, true)
		case m := <-announced:
			if s.holds(m.Payload) {
				s.readPresence(ctx, m.Payload)
			}
		}
	}
}

// holds reports whether this instance follows room.
func (s *Store) holds(room string) bool {
	_, ok := s.feed.Position(room)
	return ok
}

// flushPresence writes the counts that changed and announces them (on a
// beat: rewrites every count, unannounced, and reads every room this
// instance holds). A failed write stays dirty for the next round.
func (s *Store) flushPresence(ctx context.Context, all bool) {
	p := s.presence
	p.mu.Lock()
	write := map[string]int{}
	for room, n := range p.local {
		if all || p.dirty[room] {
			write[room] = n
		}
	}
	clear(p.dirty)
	for room, n := range p.local {
		if n == 0 {
			delete(p.local, room) // written once as a removal below
		}
	}
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	for room, n := range write {
		if err := s.writePresence(ctx, room, n, !all); err != nil {
			s.log.Debug("redis rooms: presence write", "room", room, "err", err)
			p.mu.Lock()
			if _, ok := p.local[room]; !ok {
				p.local[room] = n
			}
			p.dirty[room] = true
			p.mu.Unlock()
		}
	}
	if !all {
		// The announcement comes back to this instance too, through the
		// subscription, which reads the room's counts.
		return
	}
	for _, p := range s.feed.Positions() {
		s.readPresence(ctx, p.Room)
	}
}

// readPresence sums the other instances' counts of room for the hub and
// drops from the room's set the instances whose count expired.
func (s *Store) readPresence(ctx context.Context, room string) {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	// Bounded like everything read from Redis: no real fleet has more
	// instances than this in one room.
	ids, err := s.rdb.SRandMemberN(ctx, s.presenceSet(room), maxPresenceInstances).Result()
	if err != nil {
		s.log.Debug("redis rooms: presence read", "room", room, "err", err)
		return
	}
	if len(ids) == maxPresenceInstances {
		s.log.Warn("redis rooms: presence set at its bound; online is a partial count", "room", room, "instances", len(ids))
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return id == s.id })
	counts := []any{}
	if len(ids) > 0 {
		keys := make([]string, len(ids))
		for i, id := range ids {
			keys[i] = s.presenceKey(room, id)
		}
		if counts, err = s.rdb.MGet(ctx, keys...).Result(); err != nil {
			s.log.Debug("redis rooms: presence read", "room", room, "err", err)
			return
		}
	}
	others, gone := countOthers(ids, counts)
	if len(gone) > 0 {
		_ = s.rdb.SRem(ctx, s.presenceSet(room), gone...).Err()
	}
	s.hub.SetOthersOnline(room, others)
}

// Bounds of what presence reads back: one instance's count of one room, and
// the instances counted per room.
const (
	maxPresenceCount     = 1 << 20
	maxPresenceInstances = 1024
)

// countOthers sums the counts MGET returned for ids and names the ids whose
// count is missing (expired: the instance is gone) or malformed.
func countOthers(ids []string, counts []any) (int, []any) {
	sum := 0
	var gone []any
	for i, id := range ids {
		var v string
		if i < len(counts) {
			v, _ = counts[i].(string)
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxPresenceCount {
			gone = append(gone, id)
			continue
		}
		sum += n
	}
	return sum, gone
}

// writePresence sets this instance's count of room (0 removes it) and, with
// announce, tells the other instances.
func (s *Store) writePresence(ctx context.Context, room string, n int, announce bool) error {
	pipe := s.rdb.Pipeline()
	if n > 0 {
		pipe.Set(ctx, s.presenceKey(room, s.id), n, presenceStale)
		pipe.SAdd(ctx, s.presenceSet(room), s.id)
		pipe.Expire(ctx, s.presenceSet(room), 2*presenceStale)
	} else {
		pipe.Del(ctx, s.presenceKey(room, s.id))
		pipe.SRem(ctx, s.presenceSet(room), s.id)
	}
	if announce {
		pipe.Publish(ctx, s.presenceChannel(), room)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// clearPresence removes this instance's counts and announces it, best effort.
func (s *Store) clearPresence() {
	ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
	defer cancel()
	p := s.presence
	p.mu.Lock()
	rooms := slices.Collect(maps.Keys(p.local))
	p.mu.Unlock()
	for _, room := range rooms {
		if err := s.writePresence(ctx, room, 0, true); err != nil {
			s.log.Debug("redis rooms: presence clear", "room", room, "err", err)
		}
	}
}
