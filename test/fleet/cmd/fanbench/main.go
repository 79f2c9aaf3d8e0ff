// Command fanbench measures chat fan-out on this machine: throughput
// (deliveries per second) and delivery latency (send → msg at every member
// of the room) for one in-process chat server, one in Redis mode, and two in
// Redis mode sharing the room, with the same clients and load. It starts
// redis-server and the chat servers itself on free loopback ports, runs each
// scenario for a bounded time and prints a Markdown table for BENCHMARKS.md.
//
//	go build -o /tmp/chatserver ./chatserver
//	go run ./test/fleet/cmd/fanbench -chatserver /tmp/chatserver
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

type options struct {
	chatserver string
	members    int
	senders    int
	rate       float64
	duration   time.Duration
	warmup     time.Duration
	only       string
}

func main() {
	var o options
	flag.StringVar(&o.chatserver, "chatserver", "", "path to a chatserver binary built from this checkout (required)")
	flag.IntVar(&o.members, "members", 200, "clients in the room (each receives every message)")
	flag.IntVar(&o.senders, "senders", 20, "how many of the members send")
	flag.Float64Var(&o.rate, "rate", 4, "messages per second per sender (the server allows 5)")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured time per scenario (at most 2m)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "sending before measuring starts")
	flag.StringVar(&o.only, "only", "", "run only the scenario with this name")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "fanbench:", err)
		os.Exit(1)
	}
}

type scenario struct {
	name      string
	instances int
	redis     bool
}

var scenarios = []scenario{
	{name: "1 instance, in-process rooms", instances: 1},
	{name: "1 instance, Redis rooms", instances: 1, redis: true},
	{name: "2 instances, Redis rooms", instances: 2, redis: true},
}

func run(ctx context.Context, o options) error {
	switch {
	case o.chatserver == "":
		return errors.New("-chatserver is required")
	case o.members < 1 || o.members > 2000, o.senders < 1 || o.senders > o.members:
		return errors.New("want 1 ≤ senders ≤ members ≤ 2000")
	case o.rate <= 0 || o.rate > 5:
		return errors.New("-rate must be in (0, 5]: the server rate-limits above that")
	case o.duration <= 0 || o.duration > 2*time.Minute:
		return errors.New("-duration must be in (0, 2m]")
	}
	fmt.Printf("members=%d senders=%d rate=%.1f/s per sender duration=%s cores=%d load=%s\n\n",
		o.members, o.senders, o.rate, o.duration, numCPU(), loadAvg())
	fmt.Println("| scenario | sent/s | deliveries/s | p50 | p99 | max | missing |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, sc := range scenarios {
		if o.only != "" && o.only != sc.name {
			continue
		}
		r, err := runScenario(ctx, o, sc)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		fmt.Printf("| %s | %.0f | %.0f | %s | %s | %s | %d |\n", sc.name, r.sentPerSec, r.delivPerSec,
			ms(r.p50), ms(r.p99), ms(r.max), r.missing)
	}
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func numCPU() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

type result struct {
	sentPerSec, delivPerSec float64
	p50, p99, max           time.Duration
	missing                 int
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// child runs a process until stop; its output goes to a file in dir.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func spawn(dir, name string, env []string, bin string, args ...string) (*child, error) {
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = f.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func waitHealthy(ctx context.Context, url string) error {
	c := &http.Client{Timeout: time.Second}
	for range 100 {
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not healthy", url)
}

func runScenario(ctx context.Context, o options, sc scenario) (result, error) {
	dir, err := os.MkdirTemp("", "fanbench-")
	if err != nil {
		return result{}, err
	}
	if os.Getenv("FANBENCH_KEEP") == "" {
		defer os.RemoveAll(dir)
	}
	var children []*child
	defer func() {
		for _, c := range slices.Backward(children) {
			c.stop()
		}
	}()
	env := os.Environ()
	if sc.redis {
		port, err := freePort()
		if err != nil {
			return result{}, err
		}
		c, err := spawn(dir, "redis", env, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--dir", dir, "--save", "", "--appendonly", "yes", "--appendfsync", "everysec")
		if err != nil {
			return result{}, err
		}
		children = append(children, c)
		env = append(env, fmt.Sprintf("CHAT_REDIS_URL=redis://127.0.0.1:%d/0", port))
		time.Sleep(300 * time.Millisecond)
	}
	var urls []string
	for i := range sc.instances {
		port, err := freePort()
		if err != nil {
			return result{}, err
		}
		e := append(slices.Clip(env), fmt.Sprintf("CHAT_ADDR=127.0.0.1:%d", port), "APP_COLOR=bench", "APP_VERSION=bench")
		c, err := spawn(dir, fmt.Sprintf("chat%d", i), e, o.chatserver)
		if err != nil {
			return result{}, err
		}
		children = append(children, c)
		if err := waitHealthy(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", port)); err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("chat%d.log", i)))
			return result{}, fmt.Errorf("%w\n%s", err, log)
		}
		urls = append(urls, fmt.Sprintf("127.0.0.1:%d", port))
	}
	return measure(ctx, o, urls)
}

// measure connects the members round-robin to the instances, lets the
// senders send at the given rate, and records every delivery's latency.
func measure(ctx context.Context, o options, hosts []string) (result, error) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		measuring atomic.Bool
		sent      atomic.Int64
		measured  = map[string]bool{} // cids sent while measuring
	)
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	clients := make([]*chatclient.Client, o.members)
	for i := range clients {
		host := hosts[i%len(hosts)]
		clients[i] = chatclient.New(chatclient.Config{
			URL: "ws://" + host + "/ws", Origin: "http://" + host, Room: "bench", Name: fmt.Sprintf("m%d", i),
			Logger: slog.New(slog.DiscardHandler),
			OnMsg: func(m chatclient.Msg, at time.Time) {
				ns, ok := strings.CutPrefix(m.Text, "t=")
				if !ok {
					return
				}
				sentAt, err := strconv.ParseInt(ns, 10, 64)
				if err != nil {
					return
				}
				mu.Lock()
				if measured[m.CID] {
					latencies = append(latencies, at.Sub(time.Unix(0, sentAt)))
				}
				mu.Unlock()
			},
		})
		wg.Go(func() { _ = clients[i].Run(runCtx) })
		if i%25 == 24 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range clients {
		wctx, wcancel := context.WithDeadline(ctx, deadline)
		err := c.WaitFor(wctx, func(s chatclient.Snapshot) bool { return s.Live })
		wcancel()
		if err != nil {
			return result{}, fmt.Errorf("clients did not connect: %w", err)
		}
	}
	fmt.Fprintf(os.Stderr, "%s: %d clients connected\n", time.Now().Format(time.TimeOnly), len(clients))
	interval := time.Duration(float64(time.Second) / o.rate)
	stopSend := make(chan struct{})
	var sendWG sync.WaitGroup
	for i := range o.senders {
		c := clients[i]
		sendWG.Go(func() {
			// Spread the senders' phases over one interval.
			time.Sleep(interval * time.Duration(i) / time.Duration(o.senders))
			t := time.NewTicker(interval)
			defer t.Stop()
			for {
				select {
				case <-stopSend:
					return
				case <-t.C:
				}
				// Hold mu across Send so a fast delivery finds its cid marked.
				mu.Lock()
				cid := c.Send("t="+strconv.FormatInt(time.Now().UnixNano(), 10), 0.5, 0.5)
				if measuring.Load() {
					measured[cid] = true
					sent.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(o.warmup)
	measuring.Store(true)
	start := time.Now()
	time.Sleep(o.duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	close(stopSend)
	sendWG.Wait()
	fmt.Fprintf(os.Stderr, "%s: measured\n", time.Now().Format(time.TimeOnly))
	// Let the last messages arrive: until no delivery came for a second,
	// at most 10 s. Whatever is still missing then counts as missing.
	for range 10 {
		mu.Lock()
		before := len(latencies)
		mu.Unlock()
		time.Sleep(time.Second)
		mu.Lock()
		after := len(latencies)
		mu.Unlock()
		if after == before {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := int(sent.Load()) * o.members
	r := result{
		sentPerSec:  float64(sent.Load()) / elapsed.Seconds(),
		delivPerSec: float64(len(latencies)) / elapsed.Seconds(),
		missing:     want - len(latencies),
	}
	if len(latencies) > 0 {
		slices.Sort(latencies)
		r.p50 = latencies[len(latencies)/2]
		r.p99 = latencies[len(latencies)*99/100]
		r.max = latencies[len(latencies)-1]
	}
	return r, nil
}
