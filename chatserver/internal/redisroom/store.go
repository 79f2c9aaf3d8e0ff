// Package redisroom keeps chat rooms in Redis (CHAT_REDIS_URL), so any number
// of chat servers on any hosts share them: it is the chat.Remote of the hub.
//
// Each room is three keys sharing the hash tag {room}:
//
//	<prefix>room:{name}:meta    hash  epoch, seq
//	<prefix>room:{name}:log     stream of accepted messages, ID "<seq>-0",
//	                            trimmed with MAXLEN ~ history
//	<prefix>room:{name}:dedupe  sorted set "sid cid" → seq, the last window seqs
//
// Append runs one Lua script (EVALSHA, falling back to EVAL after a restart
// emptied the script cache) that dedupes, takes the next seq, appends to the
// log and records the dedupe key atomically; the log is also the feed, so an
// accepted message is published by the same write. Every instance follows
// the logs of the rooms it holds with one blocking XREAD and applies entries
// to its hub in seq order; a gap (it fell behind the trimmed log) or an epoch
// change re-installs the room from a snapshot.
//
// Presence ("online") is shared too: see presence.go.
//
// An ack is sent only after Redis ran the script, so what a client saw acked
// is in Redis; whether it survives a Redis restart depends on Redis'
// persistence (appendonly yes, appendfsync always or everysec; see
// docs/fleet.md). A Redis that comes back without the room gives it a new
// epoch: clients are closed with 1012 and resume with resume:"reset".
package redisroom

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
	"github.com/mywebchat/mywebchat/chatserver/internal/replica"
)

// Defaults and timing.
const (
	// DefaultPrefix namespaces every key, so one Redis can serve other apps too.
	DefaultPrefix = "mywebchat:"
	// DefaultTTL expires a room's keys after this long without a message or a
	// join: idle rooms do not accumulate forever. Expiry is a new epoch.
	DefaultTTL = 30 * 24 * time.Hour
	// block is how long one XREAD waits; when it times out the follower checks
	// every room's epoch, which catches a Redis that lost its data in between.
	block = 2 * time.Second
	// readCount bounds the entries one XREAD returns per room.
	readCount = 512
	// retryMin and retryMax pace the follower's reconnects to Redis.
	retryMin = 100 * time.Millisecond
	retryMax = 2 * time.Second
	// wakeTTL expires this instance's wake stream when the instance is gone.
	wakeTTL = 10 * time.Minute
	// connectTimeout bounds the first PING at startup.
	connectTimeout = 5 * time.Second
)

// Config configures a Store.
type Config struct {
	// URL is a redis:// or rediss:// URL (password and database included);
	// it is never logged.
	URL string
	// Replica is the hub's copy of the rooms (chat.Hub.Replica); required.
	Replica Replica
	// History is how many messages a room keeps; 0 means chat.DefaultHistory.
	// Use the same value (CHAT_HISTORY) on every instance.
	History int
	// TTL expires idle rooms; 0 means DefaultTTL, negative means never.
	TTL time.Duration
	// Prefix namespaces the keys; empty means DefaultPrefix.
	Prefix string
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
}

var setLoggerOnce sync.Once

// redisLogger adapts go-redis' logger to slog.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l.log != nil {
		l.log.DebugContext(ctx, "go-redis", "detail", fmt.Sprintf(format, v...))
	}
}

// ErrBadURL means CHAT_REDIS_URL does not parse as a redis:// or rediss:// URL.
var ErrBadURL = errors.New("redisroom: CHAT_REDIS_URL is not a valid redis:// or rediss:// URL")

// Replica is what the store needs of the hub: the copy of the rooms it feeds
// (snapshots and log entries, package replica) and the other instances'
// member counts. chat.Replica implements it.
type Replica interface {
	replica.Target
	SetOthersOnline(room string, n int)
}

// Store is a chat.Remote backed by Redis. It is safe for concurrent use.
type Store struct {
	rdb     *redis.Client
	hub     Replica
	log     *slog.Logger
	prefix  string
	history int
	window  int
	ttl     int64  // seconds; 0 = no expiry
	id      string // this instance, in wake and presence keys
	wakeKey string

	presence *presence

	// feed is where each held room stands, which ones need a fresh snapshot,
	// and the order in which the hub's copy changes.
	feed *replica.Feed

	cancel context.CancelFunc
	done   chan struct{} // the follower ended
	pdone  chan struct{} // the presence loop ended (its counts cleared)
}

// Connector returns a server.RemoteFunc that connects to CHAT_REDIS_URL and
// follows rooms into the hub, keeping history messages per room (use
// CHAT_HISTORY, the same on every instance).
func Connector(history int) func(ctx context.Context, url string, hub chat.Replica, log *slog.Logger) (chat.Remote, func() error, error) {
	return func(ctx context.Context, url string, hub chat.Replica, log *slog.Logger) (chat.Remote, func() error, error) {
		s, err := New(ctx, Config{URL: url, Replica: hub, History: history, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
}

// New connects to Redis (one PING, so a wrong URL fails at startup) and
// starts the follower. Close stops it.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Replica == nil {
		return nil, errors.New("redisroom: no hub replica")
	}
	opt, err := redis.ParseURL(cfg.URL)
	if err != nil {
		// The URL and the parser's message may hold a password: name only the problem.
		return nil, ErrBadURL
	}
	opt.ClientName = "mywebchat"
	// Fail fast while Redis is away: clients get "draining" and retry.
	opt.DialTimeout = 2 * time.Second
	opt.MaxRetries = 1
	// go-redis logs pool trouble through a package-level logger: route it
	// into our JSON log (at debug: the errors reach us as return values).
	setLoggerOnce.Do(func() { redis.SetLogger(redisLogger{cfg.Logger}) })
	rdb := redis.NewClient(opt)
	s := newStore(rdb, cfg)
	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("redisroom: ping %s: %w", opt.Addr, err)
	}
	s.log.Info("redis rooms", "addr", opt.Addr, "db", opt.DB, "tls", opt.TLSConfig != nil, "history", s.history)
	s.start()
	return s, nil
}

func newStore(rdb *redis.Client, cfg Config) *Store {
	s := &Store{
		rdb:     rdb,
		hub:     cfg.Replica,
		feed:    replica.New(cfg.Replica),
		log:     cfg.Logger,
		prefix:  cfg.Prefix,
		history: cfg.History,
		done:    make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.history <= 0 {
		s.history = chat.DefaultHistory
	}
	s.window = chat.DedupeWindow(s.history)
	switch {
	case cfg.TTL == 0:
		s.ttl = int64(DefaultTTL / time.Second)
	case cfg.TTL > 0:
		s.ttl = max(1, int64(cfg.TTL/time.Second))
	}
	s.id = chat.NewEpoch()
	s.wakeKey = s.prefix + "wake:" + s.id
	s.presence = newPresence()
	return s
}

func (s *Store) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.pdone = make(chan struct{})
	go func() {
		defer close(s.done)
		s.run(ctx)
	}()
	go func() {
		defer close(s.pdone)
		s.runPresence(ctx)
	}()
}

// Close stops following, clears this instance's presence counts and closes
// the connections.
func (s *Store) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.pdone // its last writes need the client
	}
	// Closing the client ends a blocked XREAD at once.
	err := s.rdb.Close()
	if s.cancel != nil {
		<-s.done
	}
	return err
}

// keys returns the room's meta, log and dedupe keys.
func (s *Store) keys(room string) []string {
	base := s.prefix + "room:{" + room + "}:"
	return []string{base + "meta", base + "log", base + "dedupe"}
}

// Open implements chat.Remote: it installs a snapshot of the room (creating
// it in Redis when new) and follows its log from there.
func (s *Store) Open(ctx context.Context, room string) error {
	if !chat.ValidRoom(room) {
		return fmt.Errorf("open %q: %w", room, chat.ErrUnknownRoom)
	}
	if err := s.install(ctx, room); err != nil {
		return err
	}
	s.wake(ctx)
	return nil
}

// install fetches a snapshot and installs it unless the replica is already
// at or past it in the same epoch (the feed got there first).
func (s *Store) install(ctx context.Context, room string) error {
	res, err := openScript.Run(ctx, s.rdb, s.keys(room), chat.NewEpoch(), s.history, s.window, s.ttl).Result()
	if err != nil {
		return fmt.Errorf("open room %s in redis: %w: %w", room, chat.ErrDraining, err)
	}
	st, err := decodeSnapshot(res, s.history, s.window)
	if err != nil {
		return fmt.Errorf("open room %s: %w", room, err)
	}
	newEpoch, err := s.feed.Install(room, st)
	if err != nil {
		return err
	}
	if newEpoch {
		s.log.Warn("redis room has a new epoch; clients reset", "room", room, "epoch", st.Epoch)
	}
	return nil
}

// Append implements chat.Remote. Any Redis error is reported as draining:
// the client keeps the message and resends it, and dedupe makes a resend of
// a message whose reply was lost harmless.
func (s *Store) Append(ctx context.Context, room string, m chat.Message) (uint64, error) {
	if !chat.ValidRoom(room) {
		return 0, fmt.Errorf("append to %q: %w", room, chat.ErrUnknownRoom)
	}
	if err := m.Validate(); err != nil {
		return 0, fmt.Errorf("append to %s: %w", room, err)
	}
	ts := time.Now().UnixMilli()
	res, err := appendScript.Run(ctx, s.rdb, s.keys(room),
		chat.NewEpoch(), m.SID+" "+m.CID, s.history, s.window, s.ttl,
		m.SID, m.CID, m.From, m.Text,
		strconv.FormatFloat(m.X, 'g', -1, 64), strconv.FormatFloat(m.Y, 'g', -1, 64),
		strconv.FormatInt(ts, 10)).Result()
	if err != nil {
		return 0, fmt.Errorf("append to %s in redis: %w: %w", room, chat.ErrDraining, err)
	}
	epoch, seq, _, err := decodeAppend(res)
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w: %w", room, chat.ErrDraining, err)
	}
	if p, ok := s.feed.Position(room); ok && p.Epoch != epoch {
		// Redis lost the room and started a new epoch: re-install, which
		// closes the room's clients so they reset.
		s.feed.MarkStale(room)
		s.wake(ctx)
	}
	return seq, nil
}

// wake interrupts the follower's blocking read so it picks up new rooms and
// re-installs dirty ones now.
func (s *Store) wake(ctx context.Context) {
	pipe := s.rdb.Pipeline()
	pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.wakeKey, MaxLen: 1, Approx: false, Values: []any{"w", "1"}})
	pipe.Expire(ctx, s.wakeKey, wakeTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		s.log.Debug("wake follower", "err", err)
	}
}
