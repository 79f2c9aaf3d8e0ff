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
	_ server.RemoteFunc   = Connector(0)
	_ chat.Remote         = (*Store)(nil)
	_ chat.PresenceSharer = (*Store)(nil)
)

func TestCountOthers(t *testing.T) {
	tests := []struct {
		name     string
		ids      []string
		counts   []any
		want     int
		wantGone []any
	}{
		{"none", nil, nil, 0, nil},
		{"two instances", []string{"a", "b"}, []any{"3", "4"}, 7, nil},
		{"one expired", []string{"a", "b"}, []any{"3", nil}, 3, []any{"b"}},
		{"garbage is not counted", []string{"a", "b", "c"}, []any{"x", "-1", "99999999"}, 0, []any{"a", "b", "c"}},
		{"fewer counts than ids", []string{"a", "b"}, []any{"2"}, 2, []any{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gone := countOthers(tt.ids, tt.counts)
			if got != tt.want || len(gone) != len(tt.wantGone) {
				t.Fatalf("countOthers = %d, %v; want %d, %v", got, gone, tt.want, tt.wantGone)
			}
			for i := range gone {
				if gone[i] != tt.wantGone[i] {
					t.Errorf("gone[%d] = %v, want %v", i, gone[i], tt.wantGone[i])
				}
			}
		})
	}
}

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
