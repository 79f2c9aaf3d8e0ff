// Command demochat is the scripted chat of `make demo`: a few users talk in
// one room through nginx while a blue/green deploy happens, and on SIGINT or
// SIGTERM (or after -max) it reports what each user saw: messages sent and
// acknowledged, messages lost or shown twice, reconnects and the colors that
// served them. It exits 1 if any acknowledged message was lost.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

func main() {
	url := flag.String("url", "ws://127.0.0.1:8080/ws", "WebSocket endpoint (through nginx)")
	origin := flag.String("origin", "http://127.0.0.1:8080", "Origin header the browser would send")
	room := flag.String("room", "demo", "room to talk in")
	users := flag.Int("users", 3, "number of chat users (1..20)")
	every := flag.Duration("every", 400*time.Millisecond, "pause between a user's messages")
	maxRun := flag.Duration("max", 3*time.Minute, "stop after this long even without a signal")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *url, *origin, *room, *users, *every, *maxRun); err != nil {
		fmt.Fprintln(os.Stderr, "demochat:", err)
		os.Exit(1)
	}
}

// settleTimeout bounds the wait, after the stop signal, for every queued
// message to be acknowledged and delivered to every user.
const settleTimeout = 15 * time.Second

func run(ctx context.Context, url, origin, room string, users int, every, maxRun time.Duration) error {
	if users < 1 || users > 20 {
		return fmt.Errorf("-users %d: want 1..20", users)
	}
	if every < 50*time.Millisecond {
		return fmt.Errorf("-every %s: at least 50ms (the server limits 10 messages per 2 s)", every)
	}
	ctx, cancel := context.WithTimeout(ctx, maxRun)
	defer cancel()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// The clients run on their own context so they keep going (and keep
	// receiving) while the messages settle after the stop signal.
	clientCtx, stopClients := context.WithCancel(context.Background())
	defer stopClients()
	clients := make([]*chatclient.Client, users)
	done := make(chan error, users)
	for i := range clients {
		clients[i] = chatclient.New(chatclient.Config{
			URL: url, Room: room, Name: fmt.Sprintf("demo-%d", i+1), Origin: origin, Logger: log,
		})
		go func(c *chatclient.Client) { done <- c.Run(clientCtx) }(clients[i])
	}

	sent := 0
	tick := time.NewTicker(every)
	defer tick.Stop()
	start := time.Now()
	fmt.Printf("demochat: %d users chatting in room %q via %s\n", users, room, url)
talk:
	for {
		select {
		case <-ctx.Done():
			break talk
		case <-tick.C:
			c := clients[sent%users]
			c.Send(fmt.Sprintf("hello #%d at %s", sent+1, time.Since(start).Round(time.Millisecond)), 0.1+0.8*float64(sent%10)/10, 0.2)
			sent++
		}
	}

	// Every message acknowledged, and seen by every user.
	settle, cancelSettle := context.WithTimeout(context.Background(), settleTimeout)
	defer cancelSettle()
	var acked []string
	for _, c := range clients {
		if err := c.WaitFor(settle, func(s chatclient.Snapshot) bool { return s.Outbox == 0 }); err != nil {
			break
		}
	}
	for _, c := range clients {
		for cid := range c.Snapshot().Acks {
			acked = append(acked, cid)
		}
	}
	for _, c := range clients {
		c.WaitFor(settle, func(s chatclient.Snapshot) bool { return seesAll(s, acked) })
	}
	// Snapshot before stopping, so our own disconnect is not reported.
	snaps := make([]chatclient.Snapshot, len(clients))
	for i, c := range clients {
		snaps[i] = c.Snapshot()
	}
	stopClients()
	for range clients {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("client stopped", "err", err)
		}
	}
	return report(snaps, sent, acked)
}

func seesAll(s chatclient.Snapshot, cids []string) bool {
	seen := make(map[string]bool, len(s.Applied))
	for _, m := range s.Applied {
		seen[m.CID] = true
	}
	for _, cid := range cids {
		if !seen[cid] {
			return false
		}
	}
	return true
}

func report(snaps []chatclient.Snapshot, sent int, acked []string) error {
	lost := 0
	fmt.Printf("demochat: sent %d, acknowledged %d\n", sent, len(acked))
	for i, s := range snaps {
		seen := make(map[string]int, len(s.Applied))
		for _, m := range s.Applied {
			seen[m.CID]++
		}
		missing, twice := 0, 0
		for _, cid := range acked {
			switch n := seen[cid]; {
			case n == 0:
				missing++
			case n > 1:
				twice++
			}
		}
		lost += missing + twice
		var colors, resumes, closes []string
		for _, w := range s.Welcomes {
			colors = append(colors, w.Color+"("+w.Version+")")
			resumes = append(resumes, w.Resume)
		}
		for _, cl := range s.Closes {
			closes = append(closes, fmt.Sprint(cl.Code))
		}
		fmt.Printf("  demo-%d: applied %d, missing %d, shown twice %d, replays ignored %d, served by %s, resume %s, closes [%s], unsent %d\n",
			i+1, len(s.Applied), missing, twice, s.Dupes, strings.Join(colors, " → "),
			strings.Join(resumes, ","), strings.Join(closes, " "), s.Outbox)
		if s.Outbox > 0 {
			lost += s.Outbox
		}
	}
	if lost > 0 {
		return fmt.Errorf("%d messages lost, doubled or never sent", lost)
	}
	fmt.Println("demochat: no message lost or doubled")
	return nil
}
