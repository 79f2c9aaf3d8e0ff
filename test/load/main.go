// Command load measures a chat server: fan-out throughput and delivery
// latency, memory per idle connection, and the reconnect wave of a drain with
// handover. It speaks our protocol (through test/chatclient) or, with
// -proto gorilla, the plain-text protocol of gorilla/websocket's chat
// example, so both can be measured side by side on the same machine.
//
//	go run ./test/load -mode fanout -bin /tmp/chatserver -n 1000 -rate 100 -duration 10s
//	go run ./test/load -mode fanout -proto gorilla -bin /tmp/gorilla-chat -n 1000 -rate 100 -duration 10s
//	go run ./test/load -mode idle -bin /tmp/chatserver -n 10000 -rooms 100
//	go run ./test/load -mode wave -bin /tmp/chatserver -n 5000 -rooms 50
//	go run ./test/load -mode wave -move -bin /tmp/chatserver -n 200 -rooms 10
//
// Every run is bounded by -n and -duration, and talks to 127.0.0.1 only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	mode     string
	proto    string
	bin      string
	url      string
	pid      int
	n        int
	rooms    int
	rate     float64
	duration time.Duration
	settle   time.Duration
	dialPar  int
	lite     bool
	move     bool
	result   func(map[string]any) // receives each report (tests)
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "fanout", "fanout | idle | wave")
	flag.StringVar(&o.proto, "proto", "chat", "chat (ours) | gorilla (the gorilla/websocket chat example)")
	flag.StringVar(&o.bin, "bin", "", "server binary to start on a free loopback port (else use -url and -pid)")
	flag.StringVar(&o.url, "url", "ws://127.0.0.1:8080/ws", "WebSocket URL of a running server (without -bin)")
	flag.IntVar(&o.pid, "pid", 0, "PID of a running server, for RSS (without -bin)")
	flag.IntVar(&o.n, "n", 1000, "connections")
	flag.IntVar(&o.rooms, "rooms", 1, "rooms the connections are spread over (chat only)")
	flag.Float64Var(&o.rate, "rate", 100, "messages per second sent in total (fanout)")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measurement time (fanout)")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait after connecting before measuring")
	flag.IntVar(&o.dialPar, "dial-parallel", 100, "concurrent dials while connecting")
	flag.BoolVar(&o.lite, "lite", true, "fanout/idle with -proto chat: a minimal client that does not decode received frames (as light as the gorilla client); false uses test/chatclient")
	flag.BoolVar(&o.move, "move", false, "with test/chatclient (wave, or -lite=false): offer caps:[\"move\"], so a drain may move the connections instead of closing them")
	flag.Parse()
	if o.n < 1 || o.n > 20000 || o.rate <= 0 || o.rate > 100000 || o.duration > 5*time.Minute {
		fmt.Fprintln(os.Stderr, "load: -n must be 1..20000, -rate 0..100000, -duration at most 5m")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	raiseFileLimit()
	switch o.mode {
	case "fanout":
		return fanout(ctx, o)
	case "idle":
		return idle(ctx, o)
	case "wave":
		return wave(ctx, o)
	}
	return fmt.Errorf("unknown mode %q", o.mode)
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
