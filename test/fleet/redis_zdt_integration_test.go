//go:build integration

package fleet

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mywebchat/mywebchat/test/chatclient"
)

// chatInstance is one chat server process in Redis mode.
type chatInstance struct {
	name, dir, bin, redisURL string
	port                     int
	p                        *proc
}

func (c *chatInstance) start(t *testing.T, version string) {
	t.Helper()
	env := append(os.Environ(),
		fmt.Sprintf("CHAT_ADDR=127.0.0.1:%d", c.port),
		"CHAT_REDIS_URL="+c.redisURL,
		"CHAT_DRAIN_TIMEOUT=5s",
		"APP_COLOR="+c.name,
		"APP_VERSION="+version,
	)
	c.p = startProc(t, c.dir, c.name+"-"+version, env, c.bin)
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", c.port), 10*time.Second)
}

// TestRedisModeRollingRestartBehindNginx: two chat servers share rooms
// through Redis behind one nginx; while clients keep sending, each instance
// in turn is drained with SIGTERM and replaced. Every client must see every
// seq of its room exactly once, in order, in one epoch, and end with an
// empty outbox.
func TestRedisModeRollingRestartBehindNginx(t *testing.T) {
	bin := binary(t, "chatserver")
	redisURL := startRedis(t)
	dir := t.TempDir()
	instances := []*chatInstance{
		{name: "blue", dir: dir, bin: bin, redisURL: redisURL, port: freePort(t)},
		{name: "green", dir: dir, bin: bin, redisURL: redisURL, port: freePort(t)},
	}
	for _, in := range instances {
		in.start(t, "v1")
	}
	nginxPort := startNginx(t, instances[0].port, instances[1].port)
	base := fmt.Sprintf("http://127.0.0.1:%d", nginxPort)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const nClients, nRooms = 8, 2
	var clients []*chatclient.Client
	runCtx, stopClients := context.WithCancel(ctx)
	done := make(chan struct{}, nClients)
	defer func() {
		stopClients()
		for range clients {
			<-done
		}
	}()
	for i := range nClients {
		c := chatclient.New(chatclient.Config{
			URL: "ws" + base[len("http"):] + "/ws", Origin: base,
			Room: fmt.Sprintf("fleet-%d", i%nRooms), Name: fmt.Sprintf("u%d", i),
		})
		clients = append(clients, c)
		go func() {
			_ = c.Run(runCtx)
			done <- struct{}{}
		}()
	}
	for _, c := range clients {
		if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.Live }); err != nil {
			t.Fatal(err)
		}
	}
	// Both instances serve some of the clients.
	served := map[string]int{}
	for _, c := range clients {
		served[c.Snapshot().Welcomes[0].Color]++
	}
	if served["blue"] == 0 || served["green"] == 0 {
		t.Fatalf("nginx spread the clients as %v, want both instances in use", served)
	}

	stopSending := make(chan struct{})
	sendersDone := make(chan struct{})
	go func() {
		defer close(sendersDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for n := 0; n < 600; n++ { // bounded: at most 60 s
			select {
			case <-stopSending:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			clients[n%nClients].Send(fmt.Sprintf("msg %d", n), 0.5, 0.5)
		}
	}()

	time.Sleep(2 * time.Second)
	for _, in := range instances {
		t.Logf("%s draining", in.name)
		in.p.stop(t, 10*time.Second)
		t.Logf("%s stopped", in.name)
		in.start(t, "v2")
		time.Sleep(2 * time.Second)
	}
	t.Log("stop sending")
	close(stopSending)
	<-sendersDone

	// Settle: outboxes empty and every client at its room's newest seq.
	newest := map[string]uint64{}
	for i, c := range clients {
		if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.Outbox == 0 }); err != nil {
			t.Fatalf("client %d outbox never emptied: %v", i, err)
		}
		room := fmt.Sprintf("fleet-%d", i%nRooms)
		for _, seq := range c.Snapshot().Acks {
			newest[room] = max(newest[room], seq)
		}
	}
	for i, c := range clients {
		room := fmt.Sprintf("fleet-%d", i%nRooms)
		if err := c.WaitFor(ctx, func(s chatclient.Snapshot) bool { return s.LastSeq >= newest[room] }); err != nil {
			t.Fatalf("client %d never reached seq %d of %s: %v", i, newest[room], room, err)
		}
	}

	reconnected := 0
	byRoom := map[string][]chatclient.Msg{}
	for i, c := range clients {
		s := c.Snapshot()
		room := fmt.Sprintf("fleet-%d", i%nRooms)
		if len(s.Closes) > 0 {
			reconnected++
		}
		for _, w := range s.Welcomes {
			if w.Epoch != s.Welcomes[0].Epoch {
				t.Errorf("client %d: epoch changed %s → %s (resume %s)", i, s.Welcomes[0].Epoch, w.Epoch, w.Resume)
			}
		}
		for j, w := range s.Welcomes[1:] {
			if w.Resume != "ok" {
				t.Errorf("client %d: reconnect %d got resume %q, want ok", i, j+1, w.Resume)
			}
		}
		if uint64(len(s.Applied)) != newest[room] {
			t.Errorf("client %d applied %d msgs, want %d", i, len(s.Applied), newest[room])
		}
		for j, m := range s.Applied {
			if m.Seq != uint64(j+1) {
				t.Fatalf("client %d: msg %d has seq %d, want %d (lost or reordered)", i, j, m.Seq, j+1)
			}
		}
		// The same seq carries the same message for everyone in the room.
		if prev, ok := byRoom[room]; ok {
			for j := range min(len(prev), len(s.Applied)) {
				if prev[j].CID != s.Applied[j].CID {
					t.Fatalf("room %s seq %d: clients disagree (%s vs %s)", room, j+1, prev[j].CID, s.Applied[j].CID)
				}
			}
		} else {
			byRoom[room] = s.Applied
		}
		// Every ack names the seq its message was delivered under.
		delivered := map[string]uint64{}
		for _, m := range s.Applied {
			delivered[m.CID] = m.Seq
		}
		for cid, seq := range s.Acks {
			if delivered[cid] != seq {
				t.Errorf("client %d: cid %s acked as %d, delivered as %d", i, cid, seq, delivered[cid])
			}
		}
	}
	if reconnected == 0 {
		t.Fatal("no client was reconnected: the drains were not exercised")
	}
	total := uint64(0)
	for _, n := range newest {
		total += n
	}
	t.Logf("%d clients, %d messages, %d clients reconnected at least once, all in order exactly once", nClients, total, reconnected)
}
