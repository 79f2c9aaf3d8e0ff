package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

// target returns the server under test: started from -bin, or -url/-pid.
func target(ctx context.Context, o options) (addr string, pid int, stop func(), err error) {
	if o.bin == "" {
		a := strings.TrimPrefix(strings.TrimPrefix(o.url, "ws://"), "wss://")
		a, _, _ = strings.Cut(a, "/")
		return a, o.pid, func() {}, nil
	}
	s, err := startServer(ctx, o, "blue")
	if err != nil {
		return "", 0, nil, err
	}
	return s.addr, s.pid(), s.kill, nil
}

// report prints one JSON line and hands it to o.result when set (tests).
func report(o options, v map[string]any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
	if o.result != nil {
		o.result(v)
	}
}

// fanout: every connection receives what is sent to its room; the tool sends
// -rate messages per second spread over all connections (below the protocol's
// per-connection limit) and measures deliveries and their latency.
func fanout(ctx context.Context, o options) error {
	addr, pid, stop, err := target(ctx, o)
	if err != nil {
		return err
	}
	defer stop()
	d := newDialer(o, addr)
	type sample struct{ lat []time.Duration }
	samples := make([]sample, o.n)
	var measuring atomic.Bool
	var windowStart atomic.Int64
	recv := func(i int) recvFunc {
		return func(text string, at time.Time) {
			// Texts are "lt:<unix nanos>:<k>".
			rest, ok := strings.CutPrefix(text, "lt:")
			if !ok || !measuring.Load() {
				return
			}
			ns, _, _ := strings.Cut(rest, ":")
			sent, err := strconv.ParseInt(ns, 10, 64)
			if err != nil || sent < windowStart.Load() {
				return
			}
			samples[i].lat = append(samples[i].lat, at.Sub(time.Unix(0, sent)))
		}
	}
	rss0, _ := rssKB(pid)
	began := time.Now()
	conns, err := d.connect(ctx, o.n, recv)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	connectTime := time.Since(began)
	time.Sleep(o.settle)
	rssIdle, _ := rssKB(pid)

	cpu0, _ := cpuSeconds(pid)
	self0, _ := cpuSeconds(os.Getpid())
	measuring.Store(true)
	windowStart.Store(time.Now().UnixNano())
	// Send what the rate owes by now on every tick, so a starved sender
	// catches up instead of silently lowering the offered load.
	tick := time.NewTicker(time.Millisecond)
	start := time.Now()
	deadline := time.After(o.duration)
	sent := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			break loop
		case <-tick.C:
			for due := int(o.rate * time.Since(start).Seconds()); sent < due; sent++ {
				conns[sent%o.n].send(fmt.Sprintf("lt:%d:%d", time.Now().UnixNano(), sent))
			}
		}
	}
	tick.Stop()
	window := time.Since(time.Unix(0, windowStart.Load()))
	rssBusy, _ := rssKB(pid)
	time.Sleep(2 * time.Second) // in-flight deliveries
	measuring.Store(false)
	cpu1, _ := cpuSeconds(pid)
	self1, _ := cpuSeconds(os.Getpid())
	serverCPU := cpu1 - cpu0

	var all []time.Duration
	for _, s := range samples {
		all = append(all, s.lat...)
	}
	slices.Sort(all)
	perRoom := o.n / o.rooms
	if o.proto == "gorilla" {
		perRoom = o.n
	}
	expected := sent * perRoom
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
	}
	var dropped int
	for _, c := range d.chats {
		for _, cl := range c.Snapshot().Closes {
			if cl.Code == 1013 {
				dropped++
			}
		}
	}
	for _, c := range conns {
		if c != nil {
			c.close()
		}
	}
	report(o, map[string]any{
		"mode": "fanout", "proto": o.proto, "n": o.n, "rooms": o.rooms, "rate": o.rate,
		"sent": sent, "deliveries": len(all), "expected": expected,
		"deliveries_per_s": int(float64(len(all)) / window.Seconds()),
		"p50_ms":           pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1),
		"handshake_errors": d.handshakeErrors(), "slow_consumer_closes": dropped,
		"connect_s":    connectTime.Seconds(),
		"rss_kb_start": rss0, "rss_kb_idle": rssIdle, "rss_kb_busy": rssBusy,
		"rss_kb_per_conn_idle":        float64(rssIdle-rss0) / float64(o.n),
		"cpus":                        runtime.NumCPU(),
		"server_cpu_s":                serverCPU,
		"client_cpu_s":                self1 - self0,
		"deliveries_per_server_cpu_s": perCPU(len(all), serverCPU),
	})
	return nil
}

// idle: n connections that only keep alive; reports the server's RSS per connection.
func idle(ctx context.Context, o options) error {
	addr, pid, stop, err := target(ctx, o)
	if err != nil {
		return err
	}
	defer stop()
	time.Sleep(time.Second)
	rss0, err := rssKB(pid)
	if err != nil {
		return err
	}
	d := newDialer(o, addr)
	began := time.Now()
	conns, err := d.connect(ctx, o.n, func(int) recvFunc { return nil })
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	connectTime := time.Since(began)
	time.Sleep(o.settle)
	rss1, err := rssKB(pid)
	if err != nil {
		return err
	}
	for _, c := range conns {
		c.close()
	}
	report(o, map[string]any{
		"mode": "idle", "proto": o.proto, "n": o.n, "rooms": o.rooms,
		"connect_s": connectTime.Seconds(), "handshake_errors": d.handshakeErrors(),
		"rss_kb_before": rss0, "rss_kb_after": rss1,
		"rss_kb_per_conn": float64(rss1-rss0) / float64(o.n),
	})
	return nil
}

// wave: n clients on a primary with a handover folder; a second process
// starts as standby, new connections are switched to it (as nginx would),
// the primary gets SIGTERM; measure how long until every client is served by
// the new one, and how: resumed after a close, or (with -move) moved.
func wave(ctx context.Context, o options) error {
	if o.bin == "" || o.proto != "chat" {
		return fmt.Errorf("wave needs -bin with our chat server")
	}
	o.lite = false // resume and outbox need the full client
	dir, err := os.MkdirTemp("", "load-handover-")
	if err != nil {
		return fmt.Errorf("handover dir: %w", err)
	}
	defer os.RemoveAll(dir)
	env := []string{"CHAT_HANDOVER_DIR=" + dir, "CHAT_DRAIN_TIMEOUT=20s"}
	// With -move the clients arrive over unix sockets, as nginx's do on a
	// host, so the draining color can pass their connections to the other.
	colorEnv := func(color string) []string {
		if !o.move {
			return env
		}
		return append(slices.Clone(env), "CHAT_SOCKET="+filepath.Join(dir, color+".sock"))
	}
	endpoint := func(s *server, color string) string {
		if !o.move {
			return s.addr
		}
		return "unix:" + filepath.Join(dir, color+".sock")
	}
	blue, err := startServer(ctx, o, "blue", colorEnv("blue")...)
	if err != nil {
		return err
	}
	defer blue.kill()
	d := newDialer(o, endpoint(blue, "blue"))
	conns, err := d.connect(ctx, o.n, func(int) recvFunc { return nil })
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// A little traffic so resumes carry messages.
	for i := 0; i < min(o.n, 200); i++ {
		conns[i].send(fmt.Sprintf("before %d", i))
	}
	time.Sleep(o.settle)
	green, err := startServer(ctx, o, "green", colorEnv("green")...)
	if err != nil {
		return err
	}
	defer green.kill()
	to := endpoint(green, "green")
	d.target.Store(&to)
	errsBefore := d.handshakeErrors()
	// Traffic across the wave: a few clients keep sending (within the rate
	// limit), so messages are in flight while connections are held, moved or
	// resumed, and every client's seq must run on without a gap or a repeat.
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	var traffic sync.WaitGroup
	senders := min(o.n, 20)
	for i := range senders {
		traffic.Go(func() {
			// Staggered, so sends are spread evenly over time.
			select {
			case <-tctx.Done():
				return
			case <-time.After(time.Duration(i) * waveSendEvery / time.Duration(senders)):
			}
			t := time.NewTicker(waveSendEvery)
			defer t.Stop()
			for k := 0; ; k++ {
				select {
				case <-tctx.Done():
					return
				case <-t.C:
					conns[i].send(fmt.Sprintf("during %d.%d", i, k))
				}
			}
		})
	}
	// Let the traffic run a little before and after the swap.
	time.Sleep(2 * waveSendEvery)
	began := time.Now()
	code, err := blue.term(25 * time.Second)
	if err != nil {
		return err
	}
	blueExit := time.Since(began)
	var mu sync.Mutex
	var worst time.Duration
	var tooks, gaps []time.Duration // per client: from SIGTERM, and from its close frame, to resumed
	var holds []time.Duration       // per moved client: from hold to go
	resumes := map[string]int{}
	moved := 0
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, c := range d.chats {
		wg.Go(func() {
			err := c.WaitFor(wctx, func(s chatclient.Snapshot) bool { return s.Live && !s.Held && s.Color == "green" })
			if err != nil {
				failed.Add(1)
				return
			}
			now := time.Now()
			s := c.Snapshot()
			took := now.Sub(began)
			mu.Lock()
			defer mu.Unlock()
			worst = max(worst, took)
			tooks = append(tooks, took)
			if n := len(s.Moves); n > 0 && s.Moves[n-1].Color == "green" && len(s.Welcomes) == 1 {
				moved++
				holds = append(holds, s.Moves[n-1].Go.Sub(s.Moves[n-1].Hold))
				return
			}
			resumes[s.Welcomes[len(s.Welcomes)-1].Resume]++
			if len(s.Closes) > 0 {
				gaps = append(gaps, now.Sub(s.Closes[len(s.Closes)-1].At))
			}
		})
	}
	wg.Wait()
	time.Sleep(2 * waveSendEvery)
	stopTraffic()
	traffic.Wait()
	// Every send is acked in the end (bounded: what is still unacked then is
	// reported).
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	for _, c := range d.chats {
		wg.Go(func() { _ = c.WaitFor(actx, func(s chatclient.Snapshot) bool { return s.Outbox == 0 }) })
	}
	wg.Wait()
	outbox, closes, dupes, seqGaps := 0, 0, 0, 0
	for _, c := range d.chats {
		s := c.Snapshot()
		outbox += s.Outbox
		closes += len(s.Closes)
		dupes += s.Dupes
		seqGaps += s.Gaps
	}
	report(o, map[string]any{
		"mode": "wave", "n": o.n, "rooms": o.rooms,
		"blue_exit_code": code, "blue_exit_s": blueExit.Seconds(),
		"all_resumed_s": worst.Seconds(), "not_resumed": failed.Load(),
		"resumed_p50_s": quantile(tooks, 0.50).Seconds(), "resumed_p99_s": quantile(tooks, 0.99).Seconds(),
		"gap_p50_ms": quantile(gaps, 0.50).Milliseconds(), "gap_p99_ms": quantile(gaps, 0.99).Milliseconds(),
		"resume_ok": resumes["ok"], "resume_reset": resumes["reset"], "moved": moved, "closes": closes,
		"hold_go_p50_ms": quantile(holds, 0.50).Milliseconds(), "hold_go_p99_ms": quantile(holds, 0.99).Milliseconds(),
		"handshake_errors_during_wave": d.handshakeErrors() - errsBefore,
		"unacked_outbox":               outbox,
		"dupes":                        dupes, "seq_gaps": seqGaps,
	})
	return nil
}

// waveSendEvery paces each sending client of the wave: 4 per second, under
// the server's 10 sends per 2 s.
const waveSendEvery = 250 * time.Millisecond

// quantile returns the q-quantile of ds (0 when empty); it sorts ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// perCPU is deliveries per server CPU second, 0 when the CPU time is unknown
// (no -pid for a server the tool did not start).
func perCPU(deliveries int, cpu float64) int {
	if cpu <= 0 {
		return 0
	}
	return int(float64(deliveries) / cpu)
}
