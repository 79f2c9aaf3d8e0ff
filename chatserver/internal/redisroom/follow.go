package redisroom

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
	"github.com/mywebchat/mywebchat/chatserver/internal/replica"
)

// rotateScript drops a room whose data went backwards (Redis lost writes
// that this instance had already delivered): reusing those seqs would make
// clients silently skip new messages, so the room must start a new epoch.
// It only acts while the room still has the epoch the caller saw.
//
// KEYS: meta, log, dedupe. ARGV: the epoch seen.
var rotateScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  return 1
end
return 0
`)

// run is the follower: one blocking XREAD over the logs of every room this
// instance holds plus its wake stream, applying entries in seq order. It
// stops when ctx is done; it is the only one to apply messages to the feed.
func (s *Store) run(ctx context.Context) {
	wakeID := "0-0"
	backoff := retryMin
	lastCheck := time.Now()
	for ctx.Err() == nil {
		if err := s.repair(ctx); err != nil {
			s.log.Warn("redis rooms: re-install failed", "err", err)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		held := s.feed.Positions()
		rooms := make(map[string]string, len(held)) // log key → room
		streams := make([]string, 0, 2*len(held)+2)
		ids := make([]string, 0, len(held)+1)
		for _, p := range held {
			k := s.keys(p.Room)[1]
			rooms[k] = p.Room
			streams = append(streams, k)
			ids = append(ids, seqID(p.Seq))
		}
		streams = append(append(streams, s.wakeKey), append(ids, wakeID)...)
		res, err := s.rdb.XRead(ctx, &redis.XReadArgs{Streams: streams, Count: readCount, Block: block}).Result()
		switch {
		case ctx.Err() != nil:
			return
		case errors.Is(err, redis.Nil):
			// Timed out: nothing new anywhere.
		case err != nil:
			s.log.Warn("redis rooms: follow", "err", err)
			s.feed.MarkAllStale()
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, retryMax)
			continue
		}
		backoff = retryMin
		for _, xs := range res {
			if xs.Stream == s.wakeKey {
				if n := len(xs.Messages); n > 0 {
					wakeID = xs.Messages[n-1].ID
				}
				continue
			}
			if name, ok := rooms[xs.Stream]; ok {
				s.apply(name, xs.Messages)
			}
		}
		if time.Since(lastCheck) >= block {
			lastCheck = time.Now()
			s.checkEpochs(ctx)
		}
	}
}

// apply feeds log entries of one room to the hub; anything unexpected (a
// gap, another epoch, an unreadable entry) leaves the room stale, to be
// re-installed by repair.
func (s *Store) apply(room string, msgs []redis.XMessage) {
	for _, x := range msgs {
		e, err := decodeEntry(x.ID, x.Values)
		if err != nil {
			s.log.Warn("redis rooms: bad log entry", "room", room, "err", err)
			s.feed.MarkStale(room)
			return
		}
		if err := s.feed.Apply(room, e.epoch, e.msg); err != nil {
			// A gap (this instance fell behind the trimmed log) or a new
			// epoch is routine; anything else is worth a line.
			if !errors.Is(err, chat.ErrGap) && !errors.Is(err, replica.ErrOtherEpoch) && !errors.Is(err, chat.ErrUnknownRoom) {
				s.log.Warn("redis rooms: apply", "room", room, "err", err)
			}
			return
		}
	}
}

// repair re-installs every stale room from a fresh snapshot.
func (s *Store) repair(ctx context.Context) error {
	for _, name := range s.feed.Stale() {
		if err := s.reinstall(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// reinstall installs a fresh snapshot of a room this instance holds. A
// snapshot behind what was already delivered here in the same epoch means
// Redis lost acknowledged writes: the room is rotated to a new epoch.
func (s *Store) reinstall(ctx context.Context, room string) error {
	res, err := openScript.Run(ctx, s.rdb, s.keys(room), chat.NewEpoch(), s.history, s.window, s.ttl).Result()
	if err != nil {
		return err
	}
	st, err := decodeSnapshot(res, s.history, s.window)
	if err != nil {
		return err
	}
	var delivered uint64
	if p, ok := s.feed.Position(room); ok && p.Epoch == st.Epoch {
		delivered = p.Seq
	}
	if st.Seq < delivered {
		s.log.Warn("redis room went back in time; starting a new epoch", "room", room, "seq", st.Seq, "delivered", delivered)
		if err := rotateScript.Run(ctx, s.rdb, s.keys(room), st.Epoch).Err(); err != nil {
			return err
		}
	}
	return s.install(ctx, room)
}

// checkEpochs compares every held room's epoch with Redis', which catches a
// Redis that restarted empty while no read was in flight.
func (s *Store) checkEpochs(ctx context.Context) {
	held := s.feed.Positions()
	if len(held) == 0 {
		return
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(held))
	for i, p := range held {
		cmds[i] = pipe.HGet(ctx, s.keys(p.Room)[0], "epoch")
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		s.feed.MarkAllStale()
		return
	}
	for i, cmd := range cmds {
		if e, err := cmd.Result(); err != nil || e != held[i].Epoch {
			s.feed.MarkStale(held[i].Room)
		}
	}
}

// seqID is the log entry ID of seq; XREAD returns the entries after it.
func seqID(seq uint64) string { return strconv.FormatUint(seq, 10) + "-0" }

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
