package redisroom

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
	"github.com/mywebchat/mywebchat/chatserver/internal/server"
)

// The server's hook for CHAT_REDIS_URL and the store must stay compatible.
var (
	_ server.RemoteFunc = Connector(0)
	_ chat.Remote       = (*Store)(nil)
)

func TestSleep(t *testing.T) {
	tests := []struct {
		name   string
		cancel bool
		want   bool
	}{
		{name: "waits the full backoff", want: true},
		{name: "stops when the store closes", cancel: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tt.cancel {
					time.AfterFunc(retryMin/2, cancel)
				}
				start := time.Now()
				got := sleep(ctx, retryMax)
				if got != tt.want {
					t.Fatalf("sleep = %v, want %v", got, tt.want)
				}
				wantElapsed := retryMax
				if tt.cancel {
					wantElapsed = retryMin / 2
				}
				if el := time.Since(start); el != wantElapsed {
					t.Fatalf("slept %v, want %v", el, wantElapsed)
				}
			})
		})
	}
}
