// Package move passes live WebSocket connections from a draining chat server
// to its successor on the same host (docs/protocol.md, "Moving a live
// connection"): the connection's file descriptor travels over a unix socket
// with SCM_RIGHTS, together with the session the successor needs to carry on
// in order (room, sid, name, epoch, the last seq delivered) and any bytes the
// old process read from the connection but did not consume.
//
// Every process listens on move-<id>.sock in the handover folder (mode 0700,
// so only the chat servers' user reaches it; peers of another user are
// refused as well). A draining process connects to the other live process's
// socket (the successor in a deploy, the old color when a rollback stops the
// new one), learns its identity from a hello, and sends one SOCK_SEQPACKET
// message per connection. Once a message is sent the descriptor belongs to
// the receiver, which answers or closes the connection itself.
package move

import (
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mywebchat/mywebchat/chatserver/internal/peercred"
)

// Session is what the successor needs to carry a connection on.
type Session struct {
	// Room, SID and Name are the client's, from its hello.
	Room string `json:"room"`
	SID  string `json:"sid"`
	Name string `json:"name"`
	// Epoch and LastSeq say where the client is: it has been sent every msg
	// of Epoch up to LastSeq, and nothing after.
	Epoch   string `json:"epoch"`
	LastSeq uint64 `json:"last_seq"`
	// Pending are bytes read from the connection but not consumed yet (the
	// old reader's buffer), to be read before the socket's own.
	Pending []byte `json:"pending,omitempty"`
	// HeldAt is when the client answered hold (Unix ms), for the metrics of
	// the move's duration on the successor.
	HeldAt int64 `json:"held_at,omitempty"`
}

// Peer is a process's identity, sent in the hello of the move socket.
type Peer struct {
	ID      string `json:"id"`
	Color   string `json:"color"`
	Version string `json:"version"`
}

// Limits of the wire.
const (
	// maxMessage bounds one message: a session is small; Pending is at most
	// the reader's buffer (512 bytes).
	maxMessage = 16 << 10
	// dialTimeout bounds connecting to a successor and reading its hello.
	dialTimeout = time.Second
	// sockPrefix and sockSuffix frame every process's socket name.
	sockPrefix, sockSuffix = "move-", ".sock"
)

// ErrNoSuccessor means no other live process listens in the folder.
var ErrNoSuccessor = errors.New("no other chat server to move connections to")

// NewID returns a random process identity.
func NewID() string {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// Listener receives moved connections.
type Listener struct {
	ln     *net.UnixListener
	path   string
	self   Peer
	accept func(net.Conn, Session)
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[*net.UnixConn]struct{}
	closed bool
}

// Listen serves move-<self.ID>.sock in dir; accept is called, on a goroutine
// of its own, with every connection received and its session, and owns it.
func Listen(dir string, self Peer, accept func(net.Conn, Session), log *slog.Logger) (*Listener, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := filepath.Join(dir, sockPrefix+self.ID+sockSuffix)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("move socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("move socket: %w", err)
	}
	l := &Listener{ln: ln, path: path, self: self, accept: accept, log: log, conns: make(map[*net.UnixConn]struct{})}
	l.wg.Go(l.serve)
	return l, nil
}

// Path is the listener's socket file.
func (l *Listener) Path() string { return l.path }

// Close stops receiving, removes the socket file and waits for the
// connections being read; connections already handed to accept stay its own.
func (l *Listener) Close() error {
	err := l.ln.Close()
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

func (l *Listener) serve() {
	for {
		conn, err := l.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Error("move accept", "err", err)
			}
			return
		}
		if err := checkPeer(conn); err != nil {
			l.log.Warn("move: refused a socket peer", "err", err)
			_ = conn.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.mu.Unlock()
		l.wg.Go(func() {
			l.receive(conn)
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
			_ = conn.Close()
		})
	}
}

// receive sends the hello, then takes one connection per message until the
// sender closes.
func (l *Listener) receive(conn *net.UnixConn) {
	hello, _ := json.Marshal(l.self)
	if _, err := conn.Write(hello); err != nil {
		return
	}
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil || n == 0 {
			return
		}
		fds := parseRights(oob[:oobn])
		if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || len(fds) != 1 {
			closeAll(fds)
			l.log.Warn("move: malformed message", "bytes", n, "fds", len(fds))
			continue
		}
		var s Session
		if err := json.Unmarshal(buf[:n], &s); err != nil {
			closeAll(fds)
			l.log.Warn("move: malformed session", "err", err)
			continue
		}
		f := os.NewFile(uintptr(fds[0]), "moved")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			l.log.Warn("move: not a connection", "err", err)
			continue
		}
		go l.accept(c, s)
	}
}

func parseRights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if r, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, r...)
		}
	}
	return fds
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// Sender passes connections to one successor.
type Sender struct {
	conn *net.UnixConn
	// Peer is the receiving process.
	Peer Peer
}

// Dial connects to the newest other live process listening in dir (self is
// this process's own id). Socket files nobody listens on any more are
// removed on the way. ErrNoSuccessor means there is none.
func Dial(dir, self string) (*Sender, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("move: %w", err)
	}
	type cand struct {
		path string
		mod  time.Time
	}
	var cands []cand
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutPrefix(name, sockPrefix)
		if !ok || !strings.HasSuffix(id, sockSuffix) || strings.TrimSuffix(id, sockSuffix) == self || e.Type() != fs.ModeSocket {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		cands = append(cands, cand{filepath.Join(dir, name), info.ModTime()})
	}
	slices.SortFunc(cands, func(a, b cand) int { return b.mod.Compare(a.mod) })
	var errs []error
	for _, c := range cands {
		s, err := dial(c.path, self)
		if err == nil {
			return s, nil
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			// Left by a process that died without closing it.
			_ = os.Remove(c.path)
			continue
		}
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrNoSuccessor, errors.Join(errs...))
	}
	return nil, ErrNoSuccessor
}

func dial(path, self string) (*Sender, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.Dial("unixpacket", path)
	if err != nil {
		return nil, fmt.Errorf("move: %w", err)
	}
	conn := c.(*net.UnixConn)
	if err := checkPeer(conn); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(dialTimeout))
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("move: hello from %s: %w", path, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	var p Peer
	if err := json.Unmarshal(buf[:n], &p); err != nil || p.ID == "" || p.ID == self {
		conn.Close()
		return nil, fmt.Errorf("move: bad hello from %s: %q", path, buf[:n])
	}
	return &Sender{conn: conn, Peer: p}, nil
}

// Send passes conn with its session. On success the receiver owns the
// connection and the caller must only close its own descriptor (closing it
// does not end the connection, the receiver's copy keeps it open); on error
// nothing was passed and the caller still owns it.
func (s *Sender) Send(conn syscall.Conn, sess Session) error {
	payload, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("move: %w", err)
	}
	if len(payload) > maxMessage {
		return fmt.Errorf("move: session of %d bytes is too big", len(payload))
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("move: %w", err)
	}
	var sendErr error
	if err := raw.Control(func(fd uintptr) {
		_, _, sendErr = s.conn.WriteMsgUnix(payload, unix.UnixRights(int(fd)), nil)
	}); err != nil {
		return fmt.Errorf("move: %w", err)
	}
	if sendErr != nil {
		return fmt.Errorf("move: send to %s: %w", s.Peer.Color, sendErr)
	}
	return nil
}

// Close ends the connection to the successor.
func (s *Sender) Close() error { return s.conn.Close() }

// checkPeer admits only processes of our own user (or root): the folder's
// mode already restricts who can connect; this is the second fence.
func checkPeer(conn *net.UnixConn) error {
	peer, err := peercred.UID(conn)
	if err != nil {
		return err
	}
	if uid := uint32(os.Getuid()); peer != uid && peer != 0 {
		return fmt.Errorf("move peer uid %d, want %d", peer, uid)
	}
	return nil
}
