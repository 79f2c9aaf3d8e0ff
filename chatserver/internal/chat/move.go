package chat

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/mywebchat/mywebchat/chatserver/internal/move"
)

// Timing of a move (docs/protocol.md, "Moving a live connection").
const (
	// HoldWait is how long a client has to answer hold with held; later, or
	// never, and it gets the close 1012 every client got before v1.1.
	HoldWait = time.Second
	// flushWait bounds writing out what a held client is owed.
	flushWait = time.Second
	// moveParallel is how many held connections are passed at once.
	moveParallel = 16
)

// ErrMoveGap means a moved connection cannot carry on in order here: its
// room's epoch changed or the messages it missed are no longer kept.
var ErrMoveGap = errors.New("moved connection cannot continue in order")

// Mover passes a held connection, with its session, to the next process;
// *move.Sender implements it. After a nil error the connection is the
// receiver's.
type Mover interface {
	Send(conn syscall.Conn, s move.Session) error
}

// moveState is one client's move, from hold to its outcome.
type moveState struct {
	heldc  chan struct{} // closed by the reader when held arrives
	heldAt time.Time
	done   chan struct{} // closed with moved set once the move is decided
	moved  bool
	once   sync.Once
}

// decide records the outcome of the move once; the parked reader reads it.
func (m *moveState) decide(moved bool) {
	m.once.Do(func() {
		m.moved = moved
		close(m.done)
	})
}

// Holding is the set of clients asked to hold at a drain.
type Holding struct {
	hub     *Hub
	clients []*client
	sent    time.Time
}

// Hold sends hold to every client that offered the move capability, came in
// over a unix socket and is in its room; Drain should have been called, so
// no send of theirs is accepted here any more. Finish decides each one.
func (h *Hub) Hold() *Holding {
	hd := &Holding{hub: h, sent: time.Now()}
	for _, c := range h.conns.all() {
		c.mu.Lock()
		ok := c.movable && c.joined && c.mv == nil && !c.closing && !c.dead
		if ok {
			c.mv = &moveState{heldc: make(chan struct{}), done: make(chan struct{})}
		}
		c.mu.Unlock()
		if ok {
			c.enqueue(holdFrame)
			hd.clients = append(hd.clients, c)
		}
	}
	return hd
}

// Len is how many clients were asked to hold; a nil Holding has none.
func (hd *Holding) Len() int {
	if hd == nil {
		return 0
	}
	return len(hd.clients)
}

// Finish passes every client that answered held within HoldWait of the hold
// to mover; a nil mover (no successor) or any failure closes the client with
// 1012, as a drain always did, and it resumes. It returns how many moved.
//
// Each client is passed on as soon as its held arrives, in the order they
// arrive: waiting for held takes no slot, so a client slow to answer delays
// nobody else. At most moveParallel moves write and pass at once.
func (hd *Holding) Finish(ctx context.Context, mover Mover) (moved int) {
	var mu sync.Mutex
	sem := make(chan struct{}, moveParallel)
	var wg sync.WaitGroup
	deadline := hd.sent.Add(HoldWait)
	for _, c := range hd.clients {
		wg.Go(func() {
			err := waitHeld(ctx, c.mv, deadline)
			if err == nil {
				sem <- struct{}{}
				err = hd.hub.moveOne(c, mover)
				<-sem
			}
			if err != nil {
				hd.hub.metrics.Moves.WithLabelValues(moveFailure(err)).Inc()
				c.mv.decide(false)
				c.close(CloseServiceRestart, retryReason(100, 1000))
				return
			}
			hd.hub.metrics.Moves.WithLabelValues("sent").Inc()
			mu.Lock()
			moved++
			mu.Unlock()
		})
	}
	wg.Wait()
	return moved
}

var (
	errNotHeld    = errors.New("client did not answer hold in time")
	errNoMover    = errors.New("no process to move to")
	errNotFlushed = errors.New("could not write out what the client is owed")
)

func moveFailure(err error) string {
	switch {
	case errors.Is(err, errNotHeld):
		return "not_held"
	case errors.Is(err, errNoMover):
		return "no_successor"
	case errors.Is(err, errNotFlushed):
		return "not_flushed"
	default:
		return "send_failed"
	}
}

// waitHeld waits for the client's held until deadline.
func waitHeld(ctx context.Context, m *moveState, deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-m.heldc:
		return nil
	case <-t.C:
		return errNotHeld
	case <-ctx.Done():
		return ctx.Err()
	}
}

// moveOne takes c, which answered held, out of its room at a known seq, writes
// out what it is owed and passes it on.
func (h *Hub) moveOne(c *client, mover Mover) error {
	m := c.mv
	if mover == nil {
		return errNoMover
	}
	// Out of the room: every msg up to seq is queued for c, nothing after.
	r := c.room
	lr := r.lock()
	delete(lr.clients, c)
	epoch, seq := lr.epoch, lr.seq
	h.schedulePresence(lr)
	lr.unlock()
	if c.pinger != nil {
		c.pinger.Stop()
	}
	if !c.flush(flushWait) {
		return errNotFlushed
	}
	c.pingMu.Lock()
	defer c.pingMu.Unlock()
	c.mu.Lock()
	if c.dead || c.closing || len(c.queue) > 0 {
		c.mu.Unlock()
		return errNotFlushed
	}
	c.frozen = true
	c.mu.Unlock()
	raw, pending := c.handoff()
	s := move.Session{Room: c.roomName, SID: c.sid, Name: c.name, Epoch: epoch, LastSeq: seq,
		Pending: pending, HeldAt: m.heldAt.UnixMilli()}
	if err := mover.Send(raw, s); err != nil {
		c.mu.Lock()
		c.frozen = false
		c.mu.Unlock()
		return err
	}
	// The connection is the successor's: close only this process's
	// descriptor, without a close frame, and let the parked reader end.
	c.mu.Lock()
	c.dead = true
	c.queue, c.spare = nil, nil
	c.mu.Unlock()
	_ = c.conn.NetConn().Close()
	m.decide(true)
	return nil
}

// setJoined marks c as in its room (a drain may hold it from now on); called
// under the room's lock, before anything is queued for c.
func (c *client) setJoined() {
	c.mu.Lock()
	c.joined = true
	c.mu.Unlock()
}

// flush waits until the writer has written everything queued for c.
func (c *client) flush(d time.Duration) bool {
	c.mu.Lock()
	if c.dead || c.closing {
		c.mu.Unlock()
		return false
	}
	if !c.writing && len(c.queue) == 0 {
		c.mu.Unlock()
		return true
	}
	ch := make(chan struct{})
	c.flushed = ch
	c.startWriterLocked()
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		c.mu.Lock()
		c.flushed = nil
		c.mu.Unlock()
		return false
	}
}

// handoff returns the socket to pass and the bytes read from it that the
// reader did not consume: what its buffer holds, then what an earlier move
// left that the buffer has not read yet.
func (c *client) handoff() (syscall.Conn, []byte) {
	var pending []byte
	if n := c.br.Buffered(); n > 0 {
		b, _ := c.br.Peek(n)
		pending = append(pending, b...)
	}
	inner := c.bc.Conn
	if mc, ok := inner.(*movedConn); ok {
		pending = append(pending, mc.rest()...)
		inner = mc.Conn
	}
	raw, _ := inner.(syscall.Conn)
	return raw, pending
}

// parkForMove is the reader's part of a move, on a held frame: it signals
// the mover and waits for the outcome. true means the connection moved and
// the reader must stop without touching it.
func (c *client) parkForMove() bool {
	c.mu.Lock()
	m := c.mv
	c.mu.Unlock()
	if m == nil {
		return false // held without hold: nothing to do
	}
	select {
	case <-m.heldc:
		return false // a second held
	default:
	}
	m.heldAt = time.Now()
	close(m.heldc)
	<-m.done
	return m.moved
}

// movedConn is a connection received from another process: it first reads
// the bytes that process had read but not consumed, and drops the one write
// of the handshake response Adopt makes gorilla produce.
type movedConn struct {
	net.Conn
	mu        sync.Mutex
	pending   []byte
	handshake bool // the next write is the handshake response
}

func (m *movedConn) Read(p []byte) (int, error) {
	m.mu.Lock()
	if len(m.pending) > 0 {
		n := copy(p, m.pending)
		m.pending = m.pending[n:]
		m.mu.Unlock()
		return n, nil
	}
	m.mu.Unlock()
	return m.Conn.Read(p)
}

func (m *movedConn) Write(p []byte) (int, error) {
	m.mu.Lock()
	if m.handshake {
		m.handshake = false
		m.mu.Unlock()
		return len(p), nil
	}
	m.mu.Unlock()
	return m.Conn.Write(p)
}

func (m *movedConn) rest() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.pending
	m.pending = nil
	return out
}

// adoptWriter stands in for net/http when a moved connection is set up: it
// hijacks to the moved connection and discards any HTTP answer.
type adoptWriter struct {
	conn *batchConn
	br   *bufio.Reader
	hdr  http.Header
}

func (a *adoptWriter) Header() http.Header {
	if a.hdr == nil {
		a.hdr = http.Header{}
	}
	return a.hdr
}
func (a *adoptWriter) Write(p []byte) (int, error) { return len(p), nil }
func (a *adoptWriter) WriteHeader(int)             {}
func (a *adoptWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	a.br = bufio.NewReaderSize(a.conn, readBufferSize)
	return a.conn, bufio.NewReadWriter(a.br, bufio.NewWriterSize(io.Discard, 64)), nil
}

// adoptKey is a fixed, valid Sec-WebSocket-Key: the handshake Adopt runs is
// never sent to anyone.
const adoptKey = "bW92ZWQtY29ubmVjdGlvbg=="

// Adopt takes a connection another process moved here, with its session, and
// carries it on: go first, then every msg after the session's last seq, then
// live traffic. When it cannot continue in order it closes the connection
// with 1012 and the client resumes.
func (h *Handler) Adopt(conn net.Conn, s move.Session) {
	m := h.hub.metrics
	mc := &movedConn{Conn: conn, pending: s.Pending, handshake: true}
	aw := &adoptWriter{conn: &batchConn{Conn: mc}}
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/ws"}, Host: "moved", Header: http.Header{
		"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {adoptKey},
	}}
	wc, err := h.upgrader.Upgrade(aw, req, nil)
	if err != nil {
		m.Moves.WithLabelValues("adopt_failed").Inc()
		h.log.Warn("adopt moved connection", "err", err)
		_ = conn.Close()
		return
	}
	c := &client{hub: h.hub, conn: wc, bc: aw.conn, br: aw.br, movable: true, log: h.log,
		roomName: s.Room, name: s.Name, sid: s.SID,
		helloWait: h.helloWait, pingPeriod: h.pingPeriod, pongWait: h.pongWait}
	if !ValidRoom(s.Room) || !validID(s.SID) || s.Name == "" || !h.hub.register(c) {
		m.Moves.WithLabelValues("refused").Inc()
		c.close(CloseServiceRestart, retryReason(100, 1000))
		c.discard()
		c.fail()
		return
	}
	go func() {
		defer h.hub.unregister(c)
		c.serveMoved(s)
	}()
}

// serveMoved runs an adopted connection: join its room where it left off,
// then the read loop.
func (c *client) serveMoved(s move.Session) {
	defer c.cleanup()
	c.conn.SetReadLimit(MaxFrameBytes)
	ctx, cancel := context.WithTimeout(context.Background(), resumeWait+appendTimeout)
	err := c.hub.joinMoved(ctx, c, s)
	cancel()
	if err != nil {
		c.hub.metrics.Moves.WithLabelValues("gap").Inc()
		c.log.Warn("moved connection cannot continue here; it resumes", "room", c.roomName, "err", err)
		c.close(CloseServiceRestart, retryReason(100, 1000))
		c.discard()
		return
	}
	c.hub.metrics.Moves.WithLabelValues("received").Inc()
	if s.HeldAt > 0 {
		c.hub.metrics.MoveSeconds.Observe(time.Since(time.UnixMilli(s.HeldAt)).Seconds())
	}
	c.readLoop()
}

// joinMoved puts c in its room as if it had never left: go, then the msgs
// after s.LastSeq of s.Epoch, all queued before any later broadcast.
func (h *Hub) joinMoved(ctx context.Context, c *client, s move.Session) error {
	r, err := h.open(ctx, c.roomName)
	if err != nil {
		return err
	}
	hello := &Hello{Resume: true, Epoch: s.Epoch, LastSeq: s.LastSeq}
	if err := h.waitFor(ctx, r, hello); err != nil {
		return err
	}
	lr := r.lock()
	defer lr.unlock()
	resume, frames := lr.replay(hello)
	if resume != "ok" {
		return fmt.Errorf("%w: room %s is at %s/%d, the client at %s/%d", ErrMoveGap, lr.name, lr.epoch, lr.seq, s.Epoch, s.LastSeq)
	}
	lr.clients[c] = struct{}{}
	c.room = r
	c.enqueue(mustJSON(goFrame{T: "go", Color: h.cfg.Color, Version: h.cfg.Version}))
	for _, f := range frames {
		c.enqueue(f)
	}
	c.setJoined()
	h.schedulePresence(lr)
	return nil
}
