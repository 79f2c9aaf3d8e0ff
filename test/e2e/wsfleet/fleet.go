// Package wsfleet drives a fleet of chat WebSocket clients (test/chatclient)
// through nginx while deploys happen: every client joins a room, sends at a
// steady pace, and records what it sent, what was acknowledged and what it
// received; Analyze then reports lost and doubled messages per client,
// outboxes that did not empty, errors, reconnect gaps, moves, and how long
// messages took to reach the other members of the room.
package wsfleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Config shapes a fleet.
type Config struct {
	URL     string        // ws://127.0.0.1:PORT/ws
	Origin  string        // sent as the Origin header
	Clients int           // how many
	Rooms   int           // spread round-robin over this many rooms
	Send    time.Duration // pace between one client's messages
	Prefix  string        // room and name prefix, unique per scenario
	// Movers is how many of the clients (spread evenly) offer caps:["move"], so a deploy may move their connection instead
	// of closing it; the others are protocol v1 clients.
	Movers int
	// InDeploy reports whether a moment fell while a deploy was in progress;
	// Finish splits the messages' delivery delays by their send time with
	// it. It is asked only after the run, so windows may be added meanwhile.
	// Nil counts every message as steady state.
	InDeploy func(time.Time) bool
}

// client is what the fleet needs from one protocol client.
type client interface {
	// Run connects and keeps the session alive, reconnecting per the
	// protocol, until ctx is done.
	Run(ctx context.Context) error
	// Ready reports whether the first welcome/resumed has been seen.
	Ready() bool
	// Send queues a message in the outbox and returns at once.
	Send(text string) error
	// Settled reports whether the outbox is empty.
	Settled() bool
	// Online is the room's member count the server last reported.
	Online() int
	// Record snapshots what the client saw.
	Record() Record
}

// Fleet is a set of clients. Connect, StartSending and Finish are called in
// that order from one goroutine.
type Fleet struct {
	cfg     Config
	clients []client
	rooms   []string // each client's room
	cancel  context.CancelFunc
	runs    sync.WaitGroup
	sendWG  sync.WaitGroup
	stopped chan struct{}
}

// New builds the fleet's clients without connecting them.
func New(cfg Config) *Fleet {
	if cfg.Rooms < 1 {
		cfg.Rooms = 1
	}
	f := &Fleet{cfg: cfg, stopped: make(chan struct{})}
	for i := range cfg.Clients {
		room := fmt.Sprintf("%s-%d", cfg.Prefix, i%cfg.Rooms)
		if len(room) > 32 {
			room = room[len(room)-32:]
		}
		// Movers spread evenly over the clients, so every room has both kinds.
		move := (i*cfg.Movers)%cfg.Clients < cfg.Movers
		f.clients = append(f.clients, newClient(cfg, room, fmt.Sprintf("c%d", i), move))
		f.rooms = append(f.rooms, room)
	}
	return f
}

// Connect starts every client, a few at a time, and waits until all are in
// their rooms.
func (f *Fleet) Connect(ctx context.Context, timeout time.Duration) error {
	runCtx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	for i, c := range f.clients {
		f.runs.Add(1)
		go func() {
			defer f.runs.Done()
			_ = c.Run(runCtx)
		}()
		// nginx limits handshakes per address only outside loopback, but
		// a burst of hundreds of dials still costs the shared CPU.
		if i%20 == 19 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		ready := 0
		for _, c := range f.clients {
			if c.Ready() {
				ready++
			}
		}
		if ready == len(f.clients) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("only %d of %d clients ready after %s", ready, len(f.clients), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitOnline waits until every client's "online" is its room's size in the
// fleet: every member counted, wherever it is connected (with rooms in Redis,
// on every instance behind the load balancer).
func (f *Fleet) WaitOnline(ctx context.Context, timeout time.Duration) error {
	size := map[string]int{}
	for _, r := range f.rooms {
		size[r]++
	}
	deadline := time.Now().Add(timeout)
	for {
		wrong := 0
		var example string
		for i, c := range f.clients {
			if n := c.Online(); n != size[f.rooms[i]] {
				wrong++
				example = fmt.Sprintf("a client of room %s sees %d online, want %d", f.rooms[i], n, size[f.rooms[i]])
			}
		}
		if wrong == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d clients do not see their room's members after %s; e.g. %s", wrong, len(f.clients), timeout, example)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StartSending makes every client send one message per Send interval, with
// a random phase so the fleet's sends are spread evenly, until Finish.
func (f *Fleet) StartSending(ctx context.Context) {
	for i, c := range f.clients {
		f.sendWG.Add(1)
		go func() {
			defer f.sendWG.Done()
			phase := time.Duration(rand.Int64N(int64(f.cfg.Send) + 1))
			select {
			case <-time.After(phase):
			case <-f.stopped:
				return
			case <-ctx.Done():
				return
			}
			t := time.NewTicker(f.cfg.Send)
			defer t.Stop()
			for n := 0; ; n++ {
				_ = c.Send(fmt.Sprintf("hello %d from c%d", n, i))
				select {
				case <-t.C:
				case <-f.stopped:
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
}

// Finish stops sending, gives the clients up to settle to empty their
// outboxes and receive their rooms' last messages, stops them and analyzes.
func (f *Fleet) Finish(ctx context.Context, settle time.Duration) Report {
	close(f.stopped)
	f.sendWG.Wait()
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if f.settled() {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Records are taken before the clients stop: their own final close is
	// not a reconnect.
	records := make([]Record, len(f.clients))
	for i, c := range f.clients {
		records[i] = c.Record()
	}
	f.Close()
	rep := Analyze(records)
	rep.DelaySteady, rep.DelayDeploy = Delays(records, f.cfg.InDeploy)
	return rep
}

// settled reports whether every outbox is empty and every client received
// every message its room's members had acknowledged.
func (f *Fleet) settled() bool {
	records := make([]Record, len(f.clients))
	for i, c := range f.clients {
		if !c.Settled() {
			return false
		}
		records[i] = c.Record()
	}
	r := Analyze(records)
	return r.Lost == 0 && r.Unacked == 0
}

// Close stops every client; safe to call more than once.
func (f *Fleet) Close() {
	if f.cancel != nil {
		f.cancel()
	}
	f.runs.Wait()
}
