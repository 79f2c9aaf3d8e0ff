// Package handover hands a chat server's rooms to its successor on the same
// host, so a blue/green swap keeps every room's epoch, seq, history and dedupe
// window and clients resume with resume:"ok".
//
// Two processes share a folder (CHAT_HANDOVER_DIR, mode 0700). Leadership is
// an flock on leader.lock held by the primary for its lifetime; the primary
// listens on the unix socket leader.sock (mode 0600) in the same folder, so it
// is reachable only through the folder, never over TCP. A process that starts
// while a primary holds the lock is a standby: it connects, receives a
// snapshot of every room and then every accepted message, serves its own
// clients from that replica, and forwards their sends to the primary, which
// sequences and dedupes them. On SIGTERM the primary stops accepting, sends
// "promote" after the last message; the standby becomes the authority, answers
// "promoted" and takes the lock once the old primary releases it. If the
// primary vanishes without a handover, the socket ends and the lock is free:
// the standby becomes primary with a new epoch within about a second.
package handover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
	"github.com/mywebchat/mywebchat/chatserver/internal/peercred"
	"github.com/mywebchat/mywebchat/chatserver/internal/replica"
)

// Timing of the socket protocol.
const (
	// pingEvery keeps both ends' read deadlines fresh.
	pingEvery = time.Second
	// silence is how long either end waits for a line before giving up on the peer.
	silence = 5 * time.Second
	// retryEvery paces a standby's reconnect and lock attempts; together with
	// the EOF it sees at once, it bounds how long a vanished primary goes
	// unnoticed.
	retryEvery = 100 * time.Millisecond
	// queueLen bounds the lines waiting for one standby; a standby that falls
	// this far behind is disconnected and resyncs from a snapshot.
	queueLen = 1 << 16
)

// File names inside the handover folder.
const (
	lockName   = "leader.lock"
	socketName = "leader.sock"
)

// ErrNoPeer means a socket peer ran as a different user than this process.
var ErrNoPeer = errors.New("handover peer not allowed")

// Source is what a primary serves its standbys from: the hub as the rooms'
// authority (chat.Authority). Follow streams a snapshot of every room and
// then every change; Open and Append serve a standby's forwarded requests.
type Source interface {
	Open(room string) error
	Append(room string, m chat.Message) (seq uint64, dup bool, err error)
	Follow(f func(chat.Event)) (cancel func())
}

// Replica is what a standby keeps in step with the primary and finally
// promotes: the hub's copy of the rooms (chat.Replica). SetRemote points its
// clients' sends at the primary; Promote makes it the authority.
type Replica interface {
	replica.Target
	SetRemote(r chat.Remote)
	Promote(newEpoch bool)
}

// Config configures a Node.
type Config struct {
	// Dir is the shared folder; created with mode 0700 when missing.
	Dir string
	// Source and Replica are the two sides of the chat hub whose rooms are
	// handed over (chat.Hub.Authority and chat.Hub.Replica); both required.
	Source  Source
	Replica Replica
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the handover metrics; nil skips them.
	Registerer prometheus.Registerer
}

// Node is this process's side of the handover folder.
type Node struct {
	dir     string
	source  Source
	replica Replica
	log     *slog.Logger
	m       metrics

	primary atomic.Bool
	ready   atomic.Bool

	mu        sync.Mutex
	lock      *os.File
	ln        *net.UnixListener
	followers map[*follower]struct{}
	newest    *follower
	released  bool

	up     *upstream
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type metrics struct {
	role      prometheus.Gauge
	handovers *prometheus.CounterVec
	followers prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		role: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_handover_primary", Help: "1 when this process is the rooms' authority, 0 while standby."}),
		handovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_handovers_total", Help: "Leadership changes, by kind: handed_over, promoted, lost."}, []string{"result"}),
		followers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_handover_followers", Help: "Standbys replicating from this process."}),
	}
	if reg != nil {
		reg.MustRegister(m.role, m.handovers, m.followers)
	}
	return m
}

// Start joins the handover folder: as primary when no other process holds the
// lock, otherwise as standby replicating from the primary. The node runs
// until Close.
func Start(cfg Config) (*Node, error) {
	if cfg.Source == nil || cfg.Replica == nil {
		return nil, errors.New("handover: no hub to hand over")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("handover dir: %w", err)
	}
	fi, err := os.Stat(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("handover dir: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("handover dir %s: must be a folder writable only by its owner (mode %v)", cfg.Dir, fi.Mode().Perm())
	}
	lock, err := os.OpenFile(filepath.Join(cfg.Dir, lockName), os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("handover lock: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		dir: cfg.Dir, source: cfg.Source, replica: cfg.Replica, log: log, m: newMetrics(cfg.Registerer),
		lock: lock, followers: make(map[*follower]struct{}),
		up: newUpstream(), ctx: ctx, cancel: cancel,
	}
	ok, err := tryLock(lock)
	if err != nil {
		cancel()
		_ = lock.Close()
		return nil, err
	}
	if ok {
		if err := n.lead(); err != nil {
			cancel()
			_ = lock.Close()
			return nil, err
		}
		n.log.Info("handover: primary", "dir", n.dir)
		return n, nil
	}
	n.log.Info("handover: standby, replicating from the primary", "dir", n.dir)
	n.replica.SetRemote(n.up)
	n.wg.Go(n.follow)
	return n, nil
}

// Ready reports whether the node can serve clients: always as primary, after
// the first full snapshot as standby.
func (n *Node) Ready() bool { return n.ready.Load() }

// Primary reports whether this process is the rooms' authority.
func (n *Node) Primary() bool { return n.primary.Load() }

func tryLock(f *os.File) (bool, error) {
	err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("flock %s: %w", f.Name(), err)
	}
	return true, nil
}

// lead starts serving standbys; the caller holds the lock.
func (n *Node) lead() error {
	path := filepath.Join(n.dir, socketName)
	// Whoever holds the lock owns the socket path: a file there is stale.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	// The successor recreates the path after taking the lock; our Close must
	// not remove its socket.
	ln.SetUnlinkOnClose(false)
	n.mu.Lock()
	n.ln = ln
	n.mu.Unlock()
	n.primary.Store(true)
	n.ready.Store(true)
	n.m.role.Set(1)
	n.wg.Go(func() { n.accept(ln) })
	return nil
}

func (n *Node) accept(ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				n.log.Error("handover accept", "err", err)
			}
			return
		}
		if err := checkPeer(conn); err != nil {
			n.log.Warn("handover: refused a socket peer", "err", err)
			_ = conn.Close()
			continue
		}
		n.wg.Go(func() { n.serve(conn) })
	}
}

// checkPeer admits only processes of our own user (or root): the folder's
// mode already restricts who can connect; this is the second fence.
func checkPeer(conn *net.UnixConn) error {
	uid, err := peercred.UID(conn)
	if err != nil {
		return err
	}
	if uid != uint32(os.Geteuid()) && uid != 0 {
		return fmt.Errorf("%w: uid %d", ErrNoPeer, uid)
	}
	return nil
}

// follower is one standby connected to this primary.
type follower struct {
	conn     *net.UnixConn
	q        chan []byte
	once     sync.Once
	done     chan struct{}
	promoted chan struct{}
}

// push queues a line without blocking (it runs under room locks); a standby
// that cannot keep up is cut off and resyncs.
func (f *follower) push(b []byte) {
	select {
	case f.q <- b:
	default:
		f.stop()
	}
}

func (f *follower) stop() {
	f.once.Do(func() {
		close(f.done)
		_ = f.conn.Close()
	})
}

// serve replicates to one standby and answers its requests.
func (n *Node) serve(conn *net.UnixConn) {
	f := &follower{conn: conn, q: make(chan []byte, queueLen), done: make(chan struct{}), promoted: make(chan struct{})}
	defer f.stop()
	r := newReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(silence))
	hello, err := r.next()
	if err != nil || hello.Op != opHello || hello.Version != wireVersion {
		n.log.Warn("handover: bad standby hello", "err", err, "version", hello.Version)
		return
	}
	f.push(encode(line{Op: opHello, Version: wireVersion}))
	go n.write(f)
	unfollow := n.source.Follow(func(ev chat.Event) {
		if ev.State != nil {
			f.push(encode(line{Op: opRoom, Room: ev.Room, State: ev.State}))
			return
		}
		f.push(encode(line{Op: opMsg, Room: ev.Room, Msg: ev.Msg}))
	})
	defer unfollow()
	f.push(encode(line{Op: opSynced}))
	n.mu.Lock()
	n.followers[f] = struct{}{}
	n.newest = f
	n.m.followers.Set(float64(len(n.followers)))
	n.mu.Unlock()
	n.log.Info("handover: standby attached")
	defer func() {
		n.mu.Lock()
		delete(n.followers, f)
		if n.newest == f {
			n.newest = nil
		}
		n.m.followers.Set(float64(len(n.followers)))
		n.mu.Unlock()
		n.log.Info("handover: standby detached")
	}()
	for {
		_ = conn.SetReadDeadline(time.Now().Add(silence))
		l, err := r.next()
		if err != nil {
			return
		}
		switch l.Op {
		case opPing:
		case opOpen:
			f.push(encode(n.reply(l.ID, n.source.Open(l.Room), 0)))
		case opSend:
			if l.Msg == nil || !chat.ValidRoom(l.Room) {
				f.push(encode(line{Op: opReply, ID: l.ID, Err: errFailed}))
				continue
			}
			seq, _, err := n.source.Append(l.Room, *l.Msg)
			f.push(encode(n.reply(l.ID, err, seq)))
		case opPromoted:
			close(f.promoted)
			return
		default:
			n.log.Warn("handover: unknown op from standby", "op", l.Op)
			return
		}
	}
}

func (n *Node) reply(id uint64, err error, seq uint64) line {
	l := line{Op: opReply, ID: id, Seq: seq}
	switch {
	case err == nil:
	case errors.Is(err, chat.ErrDraining):
		l.Err = errDraining
	default:
		n.log.Warn("handover: request failed", "err", err)
		l.Err = errFailed
	}
	return l
}

// write is the only writer of a follower's socket.
func (n *Node) write(f *follower) {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	ping := encode(line{Op: opPing})
	for {
		var b []byte
		select {
		case b = <-f.q:
		case <-t.C:
			b = ping
		case <-f.done:
			return
		}
		_ = f.conn.SetWriteDeadline(time.Now().Add(silence))
		if _, err := f.conn.Write(b); err != nil {
			// Stop writing but leave the socket to the read loop, which ends
			// it: a promoted standby confirms and closes at once, so a ping
			// can fail here while its confirmation still waits to be read.
			// Closing now would throw the confirmation away and report a
			// failed handover that in fact succeeded.
			_ = f.conn.CloseWrite()
			return
		}
	}
}

// Handover gives the rooms to the newest standby: it must be called after
// Hub.Drain, so "promote" follows the last accepted message. It returns when
// the standby confirmed (or ctx ended) and releases the lock either way. With
// no standby it only releases the lock.
func (n *Node) Handover(ctx context.Context) error {
	if !n.Primary() {
		return nil
	}
	n.mu.Lock()
	f := n.newest
	n.mu.Unlock()
	defer n.release()
	if f == nil {
		return nil
	}
	start := time.Now()
	f.push(encode(line{Op: opPromote}))
	select {
	case <-f.promoted:
	case <-f.done:
		select {
		case <-f.promoted: // confirmed, then the connection ended
		default:
			return errors.New("handover: successor disconnected before confirming")
		}
	case <-ctx.Done():
		return fmt.Errorf("handover: %w", ctx.Err())
	}
	n.m.handovers.WithLabelValues("handed_over").Inc()
	n.log.Info("handover: rooms handed to the successor", "ms", time.Since(start).Milliseconds())
	return nil
}

// release stops leading: no new standbys, and the lock is free for the successor.
func (n *Node) release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.released {
		return
	}
	n.released = true
	if n.ln != nil {
		_ = n.ln.Close()
	}
	n.primary.Store(false)
	_ = n.lock.Close() // closing the descriptor drops the flock
}

// Close stops the node and releases the lock and sockets.
func (n *Node) Close() error {
	n.cancel()
	n.up.shutdown()
	n.release()
	n.mu.Lock()
	for f := range n.followers {
		f.stop()
	}
	n.mu.Unlock()
	n.wg.Wait()
	return nil
}

// follow is the standby's loop: replicate until promoted or until the
// primary is gone, then lead.
func (n *Node) follow() {
	path := filepath.Join(n.dir, socketName)
	for n.ctx.Err() == nil {
		conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err == nil {
			promoted, rerr := n.replicate(conn)
			_ = conn.Close()
			if promoted {
				n.takeLock()
				return
			}
			if n.ctx.Err() != nil {
				return
			}
			n.log.Warn("handover: lost the primary", "err", rerr)
		}
		// No primary answers: if nobody holds the lock, it is gone for good
		// and continuity is lost.
		n.mu.Lock()
		released := n.released
		n.mu.Unlock()
		if released {
			return
		}
		ok, lerr := tryLock(n.lock)
		if lerr != nil {
			n.log.Error("handover: lock", "err", lerr)
		}
		if ok {
			n.replica.Promote(true)
			n.up.detach()
			if err := n.lead(); err != nil {
				n.log.Error("handover: cannot serve standbys", "err", err)
			}
			n.m.handovers.WithLabelValues("lost").Inc()
			n.log.Warn("handover: predecessor vanished, primary with a new epoch")
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(retryEvery):
		}
	}
}

// takeLock waits for the old primary to release the lock after a handover;
// the hub is already the authority.
func (n *Node) takeLock() {
	for n.ctx.Err() == nil {
		ok, err := tryLock(n.lock)
		if err != nil {
			n.log.Error("handover: lock", "err", err)
		}
		if ok {
			if err := n.lead(); err != nil {
				n.log.Error("handover: cannot serve standbys", "err", err)
			}
			n.m.handovers.WithLabelValues("promoted").Inc()
			n.log.Info("handover: promoted to primary")
			return
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(retryEvery / 5):
		}
	}
}

// replicate follows one primary connection. It returns promoted=true after a
// handover, otherwise the reason the stream ended.
func (n *Node) replicate(conn *net.UnixConn) (promoted bool, err error) {
	if err := checkPeer(conn); err != nil {
		return false, err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(silence))
	if _, err := conn.Write(encode(line{Op: opHello, Version: wireVersion})); err != nil {
		return false, fmt.Errorf("handover hello: %w", err)
	}
	r := newReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(silence))
	hello, err := r.next()
	if err != nil {
		return false, err
	}
	if hello.Op != opHello || hello.Version != wireVersion {
		return false, fmt.Errorf("handover: primary speaks version %d, want %d", hello.Version, wireVersion)
	}
	n.up.attach(conn)
	defer n.up.detach()
	// Each connection starts with a snapshot of every room: a fresh feed, so
	// each snapshot installs. A message that does not follow on ends the
	// stream; the next connection resyncs from new snapshots.
	feed := replica.New(n.replica)
	stop := make(chan struct{})
	defer close(stop)
	go n.up.ping(stop)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(silence))
		l, err := r.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, errors.New("primary closed the socket")
			}
			return false, err
		}
		switch l.Op {
		case opRoom:
			if l.State == nil {
				return false, errors.New("handover: room line without state")
			}
			if _, err := feed.Install(l.Room, *l.State); err != nil {
				return false, err
			}
		case opSynced:
			if !n.ready.Swap(true) {
				n.log.Info("handover: replica in sync")
			}
		case opMsg:
			if l.Msg == nil {
				return false, errors.New("handover: msg line without message")
			}
			if err := feed.Apply(l.Room, "", *l.Msg); err != nil {
				return false, err
			}
		case opReply:
			n.up.resolve(l)
		case opPing:
		case opPromote:
			n.replica.Promote(false)
			n.up.detach()
			_ = conn.SetWriteDeadline(time.Now().Add(silence))
			if _, err := conn.Write(encode(line{Op: opPromoted})); err != nil {
				n.log.Warn("handover: confirm promotion", "err", err)
			}
			return true, nil
		default:
			return false, fmt.Errorf("handover: unknown op %q", l.Op)
		}
	}
}

// upstream is the standby's chat.Remote: it forwards requests to the primary
// over the socket and matches the replies.
type upstream struct {
	mu      sync.Mutex
	conn    *net.UnixConn
	next    uint64
	pending map[uint64]chan line
}

func newUpstream() *upstream { return &upstream{pending: make(map[uint64]chan line)} }

func (u *upstream) attach(conn *net.UnixConn) {
	u.mu.Lock()
	u.conn = conn
	u.mu.Unlock()
}

// detach fails every pending request as draining: the clients retry after
// retry_ms, and dedupe makes a retry of an accepted send harmless.
func (u *upstream) detach() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.conn = nil
	for id, ch := range u.pending {
		ch <- line{Op: opReply, ID: id, Err: errDraining}
		delete(u.pending, id)
	}
}

// shutdown ends the replication stream: the standby's read loop returns.
func (u *upstream) shutdown() {
	u.mu.Lock()
	if u.conn != nil {
		_ = u.conn.Close()
	}
	u.mu.Unlock()
	u.detach()
}

func (u *upstream) resolve(l line) {
	u.mu.Lock()
	ch, ok := u.pending[l.ID]
	delete(u.pending, l.ID)
	u.mu.Unlock()
	if ok {
		ch <- l
	}
}

func (u *upstream) ping(stop <-chan struct{}) {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	b := encode(line{Op: opPing})
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			u.mu.Lock()
			if u.conn != nil {
				_ = u.conn.SetWriteDeadline(time.Now().Add(silence))
				_, _ = u.conn.Write(b)
			}
			u.mu.Unlock()
		}
	}
}

func (u *upstream) call(ctx context.Context, l line) (line, error) {
	ch := make(chan line, 1)
	u.mu.Lock()
	if u.conn == nil {
		u.mu.Unlock()
		return line{}, fmt.Errorf("no primary: %w", chat.ErrDraining)
	}
	u.next++
	l.ID = u.next
	u.pending[l.ID] = ch
	_ = u.conn.SetWriteDeadline(time.Now().Add(silence))
	_, err := u.conn.Write(encode(l))
	if err != nil {
		delete(u.pending, l.ID)
	}
	u.mu.Unlock()
	if err != nil {
		return line{}, fmt.Errorf("forward to primary: %w: %w", chat.ErrDraining, err)
	}
	select {
	case r := <-ch:
		switch r.Err {
		case "":
			return r, nil
		case errDraining:
			return r, chat.ErrDraining
		default:
			return r, fmt.Errorf("primary refused %s: %s", l.Op, r.Err)
		}
	case <-ctx.Done():
		u.mu.Lock()
		delete(u.pending, l.ID)
		u.mu.Unlock()
		return line{}, fmt.Errorf("forward to primary: %w", ctx.Err())
	}
}

// Open implements chat.Remote.
func (u *upstream) Open(ctx context.Context, room string) error {
	_, err := u.call(ctx, line{Op: opOpen, Room: room})
	return err
}

// Append implements chat.Remote.
func (u *upstream) Append(ctx context.Context, room string, m chat.Message) (uint64, error) {
	r, err := u.call(ctx, line{Op: opSend, Room: room, Msg: &m})
	return r.Seq, err
}
