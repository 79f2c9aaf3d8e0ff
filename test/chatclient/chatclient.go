// Package chatclient is a Go client of the chat protocol (docs/protocol.md) for
// tests and load tools: it dials a room, says hello (resuming with its epoch
// and last seq), keeps an outbox of unacked sends that it resends after every
// `resumed`, applies a msg only when its seq is above the last applied one,
// records everything it receives, and reconnects as the protocol's client
// rules say (retry_ms after 1012/1013/1001, jittered backoff after abnormal
// closes, never after 1008). With Config.Move it also lets a deploy move its
// live connection to the new color (protocol v1.1): it answers `hold` with
// `held`, writes no data frame until `go`, and then sends what it queued.
package chatclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Backoff after abnormal closes: full jitter, exponential from backoffMin to backoffMax.
const (
	backoffMin = 500 * time.Millisecond
	backoffMax = 20 * time.Second
	// readWait drops a connection whose server stopped pinging (it pings every 25 s).
	readWait = 70 * time.Second
	// writeWait bounds one frame write.
	writeWait = 10 * time.Second
	// moveWait gives up on a move whose `go` never came: the connection is
	// dropped and resumed, like any lost connection. The server promises
	// `go` within 1 s and otherwise closes with 1012 itself.
	moveWait = 5 * time.Second
)

// ErrPolicy means the server closed with 1008: reconnecting would not help.
var ErrPolicy = errors.New("closed by the server with 1008 (policy violation)")

// Config configures a Client.
type Config struct {
	// URL is the WebSocket endpoint, e.g. ws://127.0.0.1:8080/ws; the room is added as ?room=.
	URL string
	// Room, Name: the room to join and the display name. SID is the session id
	// kept across reconnects (dedupe key); empty means a random one.
	Room, Name, SID string
	// Origin is sent as the Origin header when set.
	Origin string
	// Dialer dials; nil means a dialer with a 10 s handshake timeout.
	Dialer *websocket.Dialer
	// OnMsg, when set, is called for every applied msg, in order, with the time it arrived.
	OnMsg func(m Msg, at time.Time)
	// OnAck, when set, is called for every ack with the time it arrived.
	OnAck func(cid string, seq uint64, at time.Time)
	// Logger receives reconnect logs; nil discards them.
	Logger *slog.Logger
	// Forget, when true, keeps no list of applied messages (load tools with
	// many clients); LastSeq and OnMsg still work.
	Forget bool
	// Move, when true, offers caps:["move"] in hello: a deploy may then move
	// the live connection to the new color instead of closing it. False is a
	// client of protocol v1, which the server drains with 1012.
	Move bool
}

// Move is one move of the live connection to another color.
type Move struct {
	Hold    time.Time // `hold` arrived (and `held` was sent)
	Go      time.Time // `go` arrived
	Color   string    // the new color, from `go`
	Version string
}

// Msg is an applied msg frame, with the epoch it was applied under.
type Msg struct {
	Epoch string  `json:"-"`
	Seq   uint64  `json:"seq"`
	CID   string  `json:"cid"`
	From  string  `json:"from"`
	Text  string  `json:"text"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	TS    int64   `json:"ts"`
}

// Welcome is a received welcome frame.
type Welcome struct {
	Epoch   string `json:"epoch"`
	Seq     uint64 `json:"seq"`
	Resume  string `json:"resume"`
	Color   string `json:"color"`
	Version string `json:"version"`
	Online  int    `json:"online"`
}

// ErrorFrame is a received error frame.
type ErrorFrame struct {
	Code    string `json:"code"`
	CID     string `json:"cid"`
	RetryMS int64  `json:"retry_ms"`
}

// Close is how one connection ended.
type Close struct {
	Code   int    // 1006 (abnormal) when there was no close frame
	Reason string // the close reason
	At     time.Time
}

type outItem struct {
	cid  string
	text string
	x, y float64
	// on is the connection it was last written to: after a move's `go`,
	// what was not written to the (same) connection yet goes out.
	on *websocket.Conn
}

// Client is one chat user. Its methods are safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger
	// moveWait is moveWait; tests shorten it.
	moveWait time.Duration

	mu         sync.Mutex
	epoch      string
	lastSeq    uint64
	applied    []Msg
	dupes      int // msg frames ignored because their seq was already applied
	gaps       int // msg frames that skipped seqs: messages this client never saw
	outbox     []outItem
	acks       map[string]uint64
	welcomes   []Welcome
	closes     []Close
	errs       []ErrorFrame
	dialErrors int
	online     int
	conn       *websocket.Conn
	live       bool // resumed on the current connection: sends go out at once
	resumes    int  // `resumed` frames seen, over all connections
	held       bool // between `hold` and `go`: sends wait in the outbox
	holdAt     time.Time
	holdTimer  *time.Timer
	moves      []Move
	color      string // of the color serving the connection (welcome, then go)
	version    string
	nextCID    int
	changed    chan struct{}
	waiters    int

	// wmu serialises frame writes on conn; taken before mu. Holding it while
	// deciding whether a send may go out keeps a send from slipping out
	// after `held`.
	wmu sync.Mutex
}

// New returns a client; call Run to connect.
func New(cfg Config) *Client {
	if cfg.SID == "" {
		cfg.SID = randomID()
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{cfg: cfg, log: log, moveWait: moveWait, acks: make(map[string]uint64), changed: make(chan struct{})}
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// notifyLocked wakes WaitFor callers.
func (c *Client) notifyLocked() {
	if c.waiters == 0 {
		return // nobody waits: skip the allocation (load tools call this per frame)
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// Run connects and reconnects until ctx ends (then it returns nil) or the
// server closes with 1008 (ErrPolicy).
func (c *Client) Run(ctx context.Context) error {
	attempt := 0
	for {
		before := c.resumedCount()
		delay, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrPolicy) {
			return err
		}
		delay = reconnectDelay(delay, c.resumedCount() != before, &attempt)
		c.log.Debug("reconnecting", "room", c.cfg.Room, "in", delay, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// reconnectDelay is the wait before the next connection, given the delay
// the last session's close asked for (negative: abnormal) and whether that
// session got to `resumed`. Abnormal closes back off with full jitter,
// exponentially in the number of them in a row; like the page, a session
// that resumed starts the count over, so a server that cuts a healthy
// connection (a proxy draining it) gets the short first backoff every time.
func reconnectDelay(delay time.Duration, resumed bool, attempt *int) time.Duration {
	if resumed {
		*attempt = 0
	}
	if delay >= 0 {
		*attempt = 0
		return delay
	}
	ceil := min(backoffMax, backoffMin<<min(*attempt, 10))
	*attempt++
	return mrand.N(ceil)
}

func (c *Client) resumedCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resumes
}

// session runs one connection. It returns the delay before reconnecting:
// negative means "abnormal, use backoff".
func (c *Client) session(ctx context.Context) (time.Duration, error) {
	u, err := url.Parse(c.cfg.URL)
	if err != nil {
		return -1, fmt.Errorf("parse url: %w", err)
	}
	q := u.Query()
	q.Set("room", c.cfg.Room)
	u.RawQuery = q.Encode()
	hdr := http.Header{}
	if c.cfg.Origin != "" {
		hdr.Set("Origin", c.cfg.Origin)
	}
	conn, resp, err := c.cfg.Dialer.DialContext(ctx, u.String(), hdr)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		c.mu.Lock()
		c.dialErrors++
		c.notifyLocked()
		c.mu.Unlock()
		return -1, fmt.Errorf("dial: %w", err)
	}
	stop := context.AfterFunc(ctx, func() {
		c.wmu.Lock()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		_ = conn.Close()
	})
	defer stop()
	defer conn.Close()

	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(readWait))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
	})
	c.mu.Lock()
	hello := map[string]any{"t": "hello", "name": c.cfg.Name, "sid": c.cfg.SID}
	if c.cfg.Move {
		hello["caps"] = []string{"move"}
	}
	if c.epoch != "" {
		hello["epoch"] = c.epoch
		hello["last_seq"] = c.lastSeq
	}
	c.conn = conn
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.conn, c.live = nil, false
		c.endHoldLocked()
		c.notifyLocked()
		c.mu.Unlock()
	}()
	if err := c.write(conn, hello); err != nil {
		return -1, err
	}
	for {
		_ = conn.SetReadDeadline(time.Now().Add(readWait))
		_, data, err := conn.ReadMessage()
		if err != nil {
			return c.closed(err)
		}
		c.handle(conn, data, time.Now())
	}
}

// closed records how a connection ended and picks the reconnect delay.
func (c *Client) closed(err error) (time.Duration, error) {
	cl := Close{Code: websocket.CloseAbnormalClosure, At: time.Now()}
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		cl.Code, cl.Reason = ce.Code, ce.Text
	}
	c.mu.Lock()
	c.closes = append(c.closes, cl)
	c.mu.Unlock()
	switch cl.Code {
	case websocket.ClosePolicyViolation:
		return 0, ErrPolicy
	case websocket.CloseServiceRestart, websocket.CloseTryAgainLater, websocket.CloseGoingAway:
		var r struct {
			RetryMS *int64 `json:"retry_ms"`
		}
		if json.Unmarshal([]byte(cl.Reason), &r) == nil && r.RetryMS != nil && *r.RetryMS >= 0 {
			return time.Duration(*r.RetryMS) * time.Millisecond, err
		}
		return mrand.N(time.Second), err
	}
	return -1, err
}

func (c *Client) write(conn *websocket.Conn, v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(conn, v)
}

// writeLocked writes one frame; the caller holds wmu.
func (c *Client) writeLocked(conn *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(writeWait))
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

func (c *Client) handle(conn *websocket.Conn, data []byte, at time.Time) {
	var f struct {
		T       string  `json:"t"`
		Seq     uint64  `json:"seq"`
		CID     string  `json:"cid"`
		From    string  `json:"from"`
		Text    string  `json:"text"`
		X       float64 `json:"x"`
		Y       float64 `json:"y"`
		TS      int64   `json:"ts"`
		Epoch   string  `json:"epoch"`
		Resume  string  `json:"resume"`
		Color   string  `json:"color"`
		Version string  `json:"version"`
		Online  int     `json:"online"`
		Code    string  `json:"code"`
		RetryMS int64   `json:"retry_ms"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		c.log.Warn("undecodable frame", "err", err)
		return
	}
	var onMsg *Msg
	var resend []outItem
	c.mu.Lock()
	switch f.T {
	case "welcome":
		w := Welcome{Epoch: f.Epoch, Seq: f.Seq, Resume: f.Resume, Color: f.Color, Version: f.Version, Online: f.Online}
		c.welcomes = append(c.welcomes, w)
		c.color, c.version = f.Color, f.Version
		if f.Resume != "ok" || f.Epoch != c.epoch {
			// A new history: seqs start over for this client.
			c.epoch, c.lastSeq = f.Epoch, 0
		}
		c.online = f.Online
	case "msg":
		if f.Seq > c.lastSeq {
			// After a reset (lastSeq 0) the replay may start anywhere;
			// otherwise every seq must follow the last one.
			if c.lastSeq > 0 && f.Seq != c.lastSeq+1 {
				c.gaps++
			}
			c.lastSeq = f.Seq
			m := Msg{Epoch: c.epoch, Seq: f.Seq, CID: f.CID, From: f.From, Text: f.Text, X: f.X, Y: f.Y, TS: f.TS}
			if !c.cfg.Forget {
				c.applied = append(c.applied, m)
			}
			onMsg = &m
		} else {
			c.dupes++
		}
	case "resumed":
		c.live = true
		c.resumes++
		resend = append(resend, c.outbox...)
	case "go":
		if !c.held {
			break
		}
		c.endHoldLocked()
		c.moves = append(c.moves, Move{Hold: c.holdAt, Go: at, Color: f.Color, Version: f.Version})
		c.color, c.version = f.Color, f.Version
		// What was queued during the move goes now, oldest first; what was
		// sent before `hold` is acked by whichever color owns the connection.
		for _, it := range c.outbox {
			if it.on != conn {
				resend = append(resend, it)
			}
		}
	case "ack":
		c.acks[f.CID] = f.Seq
		c.dropLocked(f.CID)
	case "presence":
		c.online = f.Online
	case "error":
		e := ErrorFrame{Code: f.Code, CID: f.CID, RetryMS: f.RetryMS}
		c.errs = append(c.errs, e)
		switch f.Code {
		case "rate_limited", "draining":
			if f.CID != "" {
				// Not accepted: it counts as unsent, so a move's go sends it
				// even when the retry below falls due while held.
				c.markUnsentLocked(f.CID)
				c.retryLater(conn, f.CID, time.Duration(max(f.RetryMS, 50))*time.Millisecond)
			}
		case "too_long", "bad_request":
			c.dropLocked(f.CID)
		}
	}
	c.notifyLocked()
	c.mu.Unlock()
	if f.T == "hold" && c.cfg.Move {
		c.hold(conn, at)
	}
	if onMsg != nil && c.cfg.OnMsg != nil {
		c.cfg.OnMsg(*onMsg, at)
	}
	if f.T == "ack" && c.cfg.OnAck != nil {
		c.cfg.OnAck(f.CID, f.Seq, at)
	}
	for _, it := range resend {
		if !c.sendNow(conn, it) {
			return
		}
	}
}

// hold answers `hold`: from the `held` it writes until `go`, no data frame
// leaves (sendNow checks held under wmu, which hold keeps across both).
// Pings are still answered: the read loop runs on.
func (c *Client) hold(conn *websocket.Conn, at time.Time) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.conn != conn || c.held {
		c.mu.Unlock()
		return
	}
	c.held, c.holdAt = true, at
	c.holdTimer = time.AfterFunc(c.moveWait, func() {
		c.mu.Lock()
		stuck := c.conn == conn && c.held && c.holdAt.Equal(at)
		c.mu.Unlock()
		if stuck {
			c.log.Warn("move: no go after hold; reconnecting", "room", c.cfg.Room)
			_ = conn.Close() // the read loop ends; Run resumes on a new connection
		}
	})
	c.notifyLocked()
	c.mu.Unlock()
	if err := c.writeLocked(conn, map[string]string{"t": "held"}); err != nil {
		c.log.Debug("move: held", "err", err)
	}
}

// endHoldLocked leaves the held state (on go, or when the connection ends).
func (c *Client) endHoldLocked() {
	c.held = false
	if c.holdTimer != nil {
		c.holdTimer.Stop()
		c.holdTimer = nil
	}
}

// sendNow writes it on conn when conn is current, resumed and not held, and
// reports whether the connection is still usable for more.
func (c *Client) sendNow(conn *websocket.Conn, it outItem) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	ok := conn != nil && c.conn == conn && c.live && !c.held
	if ok {
		for i := range c.outbox {
			if c.outbox[i].cid == it.cid {
				c.outbox[i].on = conn
			}
		}
	}
	c.mu.Unlock()
	if !ok {
		return false
	}
	return c.writeLocked(conn, sendFrame(it)) == nil
}

// retryLater resends cid on the same connection after d if it is still
// unacked and was not sent again meanwhile (after a move's go).
func (c *Client) retryLater(conn *websocket.Conn, cid string, d time.Duration) {
	time.AfterFunc(d, func() {
		c.mu.Lock()
		var it *outItem
		for i := range c.outbox {
			if c.outbox[i].cid == cid {
				it = &c.outbox[i]
				break
			}
		}
		var item outItem
		if it != nil {
			item = *it
		}
		c.mu.Unlock()
		if it != nil && item.on != conn {
			c.sendNow(conn, item)
		}
	})
}

// markUnsentLocked records that cid was refused: no connection has it.
func (c *Client) markUnsentLocked(cid string) {
	for i := range c.outbox {
		if c.outbox[i].cid == cid {
			c.outbox[i].on = nil
		}
	}
}

func (c *Client) dropLocked(cid string) {
	for i := range c.outbox {
		if c.outbox[i].cid == cid {
			c.outbox = append(c.outbox[:i], c.outbox[i+1:]...)
			return
		}
	}
}

func sendFrame(it outItem) map[string]any {
	return map[string]any{"t": "send", "cid": it.cid, "text": it.text, "x": it.x, "y": it.y}
}

// Send queues text in the outbox and sends it now when connected; it returns the cid.
func (c *Client) Send(text string, x, y float64) string {
	c.mu.Lock()
	c.nextCID++
	it := outItem{cid: c.cfg.SID + "-" + strconv.Itoa(c.nextCID), text: text, x: x, y: y}
	c.outbox = append(c.outbox, it)
	conn := c.conn
	c.mu.Unlock()
	c.sendNow(conn, it)
	return it.cid
}

// SendRaw writes an arbitrary frame on the current connection (for tests of
// the server's validation); it is not queued.
func (c *Client) SendRaw(v any) error {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return errors.New("not connected")
	}
	return c.write(conn, v)
}

// Snapshot is a copy of what a client has seen so far.
type Snapshot struct {
	SID     string
	Epoch   string
	LastSeq uint64
	Applied []Msg
	Dupes   int
	// Gaps counts msg frames whose seq skipped past the last applied one + 1
	// (outside a reset's replay): messages lost to this client.
	Gaps       int
	Outbox     int
	Acks       map[string]uint64
	Welcomes   []Welcome
	Closes     []Close
	Errors     []ErrorFrame
	DialErrors int
	Online     int
	Live       bool
	// Held is true between a move's `hold` and its `go`.
	Held bool
	// Moves lists the moves of the live connection, oldest first.
	Moves []Move
	// Color and Version are those of the color serving the connection: from
	// the last welcome, or the last move's `go`.
	Color, Version string
}

// Snapshot returns a copy of the client's state.
func (c *Client) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	acks := make(map[string]uint64, len(c.acks))
	for k, v := range c.acks {
		acks[k] = v
	}
	return Snapshot{
		SID: c.cfg.SID, Epoch: c.epoch, LastSeq: c.lastSeq,
		Applied: append([]Msg(nil), c.applied...), Dupes: c.dupes, Gaps: c.gaps, Outbox: len(c.outbox), Acks: acks,
		Welcomes: append([]Welcome(nil), c.welcomes...), Closes: append([]Close(nil), c.closes...),
		Errors: append([]ErrorFrame(nil), c.errs...), DialErrors: c.dialErrors, Online: c.online, Live: c.live,
		Held: c.held, Moves: append([]Move(nil), c.moves...), Color: c.color, Version: c.version,
	}
}

// WaitFor blocks until cond holds for the client's state or ctx ends.
func (c *Client) WaitFor(ctx context.Context, cond func(Snapshot) bool) error {
	c.mu.Lock()
	c.waiters++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.waiters--
		c.mu.Unlock()
	}()
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if cond(c.Snapshot()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for client %s: %w", c.cfg.Name, ctx.Err())
		case <-ch:
		case <-time.After(200 * time.Millisecond):
		}
	}
}
