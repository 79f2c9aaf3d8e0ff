package wsfleet

import (
	"bytes"
	"context"
	"maps"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

// chatClient adapts test/chatclient to the fleet. The protocol client keeps
// everything the analysis needs except three moments: when each `resumed`
// arrives, which the reconnect gap is measured to (a watching net.Conn
// records it), when each message was handed to the client to send, and when
// each room message arrived, which the delivery delay is measured between.
type chatClient struct {
	c    *chatclient.Client
	room string
	name string
	move bool

	mu         sync.Mutex
	sent       []string
	sentAt     map[string]time.Time
	receivedAt map[string]time.Time
	resumed    []time.Time
}

func newClient(cfg Config, room, name string, move bool) client {
	cc := &chatClient{room: room, name: name, move: move, sentAt: map[string]time.Time{}, receivedAt: map[string]time.Time{}}
	nd := &net.Dialer{Timeout: 10 * time.Second}
	dialer := &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := nd.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &watchConn{Conn: conn, seen: cc.sawResumed}, nil
		},
	}
	cc.c = chatclient.New(chatclient.Config{URL: cfg.URL, Room: room, Name: name, Origin: cfg.Origin, Dialer: dialer, Move: move,
		OnMsg: cc.sawMsg})
	return cc
}

// sawMsg keeps the first arrival of each message: a replay after a resume is
// not a delivery, and a message applied twice is counted as doubled apart.
func (cc *chatClient) sawMsg(m chatclient.Msg, at time.Time) {
	cc.mu.Lock()
	if _, ok := cc.receivedAt[m.CID]; !ok {
		cc.receivedAt[m.CID] = at
	}
	cc.mu.Unlock()
}

func (cc *chatClient) sawResumed(at time.Time) {
	cc.mu.Lock()
	cc.resumed = append(cc.resumed, at)
	cc.mu.Unlock()
}

func (cc *chatClient) Run(ctx context.Context) error { return cc.c.Run(ctx) }

func (cc *chatClient) Ready() bool { return cc.c.Snapshot().Live }

func (cc *chatClient) Online() int { return cc.c.Snapshot().Online }

func (cc *chatClient) Send(text string) error {
	// The delay counts from the moment a person would have pressed enter:
	// a message queued while the connection is held or reconnecting waits
	// in the outbox, and that wait is part of what the room sees.
	at := time.Now()
	cid := cc.c.Send(text, rand.Float64(), rand.Float64())
	cc.mu.Lock()
	cc.sent = append(cc.sent, cid)
	cc.sentAt[cid] = at
	cc.mu.Unlock()
	return nil
}

func (cc *chatClient) Settled() bool { return cc.c.Snapshot().Outbox == 0 }

func (cc *chatClient) Record() Record {
	s := cc.c.Snapshot()
	cc.mu.Lock()
	rec := Record{
		Name: cc.name, Room: cc.room,
		Sent:       append([]string(nil), cc.sent...),
		Resumed:    append([]time.Time(nil), cc.resumed...),
		SentAt:     maps.Clone(cc.sentAt),
		ReceivedAt: maps.Clone(cc.receivedAt),
		Acked:      make(map[string]Position, len(s.Acks)),
		Received:   make(map[string][]Position, len(s.Applied)),
		OutboxLen:  s.Outbox,
		Mover:      cc.move,
	}
	cc.mu.Unlock()
	for cid, seq := range s.Acks {
		rec.Acked[cid] = Position{Seq: seq}
	}
	for _, m := range s.Applied {
		rec.Received[m.CID] = append(rec.Received[m.CID], Position{Epoch: m.Epoch, Seq: m.Seq})
	}
	for _, c := range s.Closes {
		rec.Closes = append(rec.Closes, c.At)
		if c.Code == websocket.CloseAbnormalClosure {
			rec.Abnormal++
		}
	}
	for _, m := range s.Moves {
		rec.HoldToGo = append(rec.HoldToGo, m.Go.Sub(m.Hold))
	}
	rec.Holds = len(s.Moves)
	if s.Held {
		rec.Holds++ // a hold whose go never came
	}
	for i, w := range s.Welcomes {
		if i > 0 && w.Resume != "ok" {
			rec.Resets++
		}
	}
	for _, e := range s.Errors {
		rec.Errors = append(rec.Errors, "error "+e.Code)
	}
	for range s.DialErrors {
		rec.Errors = append(rec.Errors, "dial failed")
	}
	return rec
}

// resumedMark is how a `resumed` frame starts on the wire. The server's
// frames are unmasked and uncompressed (no extension is negotiated), so
// the JSON text is visible in the byte stream.
var resumedMark = []byte(`"resumed"`)

// watchConn reports the arrival time of every `resumed` frame it reads,
// keeping a short tail of the previous read so a mark split across two
// reads is still found.
type watchConn struct {
	net.Conn
	seen func(time.Time)
	tail []byte
}

func (w *watchConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		buf := append(w.tail, p[:n]...)
		if c := bytes.Count(buf, resumedMark); c > 0 {
			now := time.Now()
			for range c {
				w.seen(now)
			}
		}
		keep := min(len(resumedMark)-1, len(buf))
		w.tail = append(w.tail[:0], buf[len(buf)-keep:]...)
	}
	return n, err
}
