//go:build integration

package rehearsal

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/httpload"
	"github.com/mywebchat/mywebchat/test/e2e/wsfleet"
)

// load is HTTP requests and chat clients on every host, each through its
// nginx's port on 127.0.0.1.
type load struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	results map[string][]httpload.Result
	fleets  map[string]*wsfleet.Fleet
}

// loadShape is how hard each host is loaded.
type loadShape struct {
	Rate    int // HTTP requests per second per host
	Clients int // chat clients per host
	Rooms   int
}

// pagePerAddress is how many requests for the page per second one client
// address may send: nginx limits "/" to 20 per second per address (burst
// 40), and all of the rehearsal's load comes from one address (the engine's
// bridge), unlike a real site's users.
const pagePerAddress = 16

// urls is the round-robin of one host's requests: the page, and /healthz
// (through nginx to the chat server, not rate-limited) for the rest of the
// rate above pagePerAddress.
func (s loadShape) urls(base string) []string {
	n := max(2, (s.Rate+pagePerAddress-1)/pagePerAddress)
	urls := []string{base + "/"}
	for range n - 1 {
		urls = append(urls, base+"/healthz")
	}
	return urls
}

func (s loadShape) String() string {
	n := len(s.urls(""))
	return fmt.Sprintf("%d HTTP requests/s (1 in %d for the page, the rest /healthz) and %d chat clients in %d rooms per host",
		s.Rate, n, s.Clients, s.Rooms)
}

func (w *world) startLoad(shape loadShape, prefix string, hosts ...*host) *load {
	t := w.t
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, results: map[string][]httpload.Result{}, fleets: map[string]*wsfleet.Fleet{}}
	for _, h := range hosts {
		f := wsfleet.New(wsfleet.Config{URL: fmt.Sprintf("ws://127.0.0.1:%d/ws", h.port), Origin: h.base(),
			Clients: shape.Clients, Rooms: shape.Rooms, Send: 500 * time.Millisecond, Prefix: prefix + "-" + h.name})
		if err := f.Connect(ctx, 30*time.Second); err != nil {
			f.Close()
			cancel()
			t.Fatalf("chat clients on %s: %v", h.name, err)
		}
		if err := f.WaitOnline(ctx, 30*time.Second); err != nil {
			f.Close()
			cancel()
			t.Fatalf("chat clients on %s: %v", h.name, err)
		}
		f.StartSending(ctx)
		l.fleets[h.name] = f
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// Bounded: at most 20 minutes, whatever happens.
			rs, _ := httpload.Run(ctx, httpload.Config{URLs: shape.urls(h.base()), Rate: shape.Rate, Duration: 20 * time.Minute})
			l.mu.Lock()
			l.results[h.name] = rs
			l.mu.Unlock()
		}()
	}
	return l
}

// loadOutcome is what users of one host saw.
type loadOutcome struct {
	Requests, Failed, Refused int
	FirstErrors               []string
	Chat                      wsfleet.Report
	results                   []httpload.Result // every request, in start order
}

func (o loadOutcome) String() string {
	s := fmt.Sprintf("requests=%d failed=%d refused=%d %v; chat: %s", o.Requests, o.Failed, o.Refused, o.FirstErrors, o.Chat)
	for _, c := range o.Chat.Worst {
		s += fmt.Sprintf("; %s: lost=%d doubled=%d unacked=%d errors=%v", c.Name, c.Lost, c.Doubled, c.Unacked, c.Errors)
	}
	return s
}

// stop ends the load and sums it up per host.
func (l *load) stop() map[string]loadOutcome {
	out := map[string]loadOutcome{}
	reports := map[string]wsfleet.Report{}
	var mu sync.Mutex
	var fw sync.WaitGroup
	for name, f := range l.fleets {
		fw.Add(1)
		go func() {
			defer fw.Done()
			r := f.Finish(context.Background(), 15*time.Second)
			mu.Lock()
			reports[name] = r
			mu.Unlock()
		}()
	}
	fw.Wait()
	l.cancel()
	l.wg.Wait()
	for name, rs := range l.results {
		o := loadOutcome{Requests: len(rs), Chat: reports[name], results: rs}
		for _, r := range rs {
			if r.OK() {
				continue
			}
			o.Failed++
			msg := r.Err
			if msg == "" {
				msg = fmt.Sprintf("status %d", r.Status)
			}
			if strings.Contains(msg, "connection refused") {
				o.Refused++
			}
			if len(o.FirstErrors) < 5 {
				o.FirstErrors = append(o.FirstErrors, r.Start.Format("15:04:05.000")+" "+r.URL+": "+msg)
			}
		}
		out[name] = o
	}
	return out
}

// served reports what users would have noticed: failed or refused requests,
// and chat messages lost, doubled or unacknowledged, clients that saw errors,
// or sockets cut without a close frame. An `error draining` is not one: the
// protocol asks the client to keep the message queued and resend it, and the
// lost/doubled/unacked counts judge whether that worked.
func (o loadOutcome) served() bool {
	c := o.Chat
	return o.Requests > 0 && o.Failed == 0 && o.Refused == 0 && c.Lost == 0 && c.Doubled == 0 && c.Unacked == 0 &&
		c.NonEmptyOutbox == 0 && c.ClientsErrored == 0 && c.Abnormal == 0 && c.Unresolved == 0
}
