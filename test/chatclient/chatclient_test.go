package chatclient

import (
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestReconnectDelay(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantMin   time.Duration
		wantMax   time.Duration
		wantErr   error
		abnormal  bool
		wantClose int
	}{
		{"1012 with retry_ms", &websocket.CloseError{Code: 1012, Text: `{"retry_ms":700}`}, 700 * time.Millisecond, 700 * time.Millisecond, nil, false, 1012},
		{"1013 without reason", &websocket.CloseError{Code: 1013}, 0, time.Second, nil, false, 1013},
		{"1001 bad reason", &websocket.CloseError{Code: 1001, Text: "bye"}, 0, time.Second, nil, false, 1001},
		{"1008 stops", &websocket.CloseError{Code: 1008}, 0, 0, ErrPolicy, false, 1008},
		{"abnormal", errors.New("EOF"), 0, 0, nil, true, 1006},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(Config{Name: "t"})
			d, err := c.closed(tt.err)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
			} else if tt.abnormal {
				if d >= 0 {
					t.Fatalf("got delay %v, want backoff (negative)", d)
				}
			} else if d < tt.wantMin || d > tt.wantMax {
				t.Fatalf("got delay %v, want %v..%v", d, tt.wantMin, tt.wantMax)
			}
			if cl := c.Snapshot().Closes; len(cl) != 1 || cl[0].Code != tt.wantClose {
				t.Fatalf("recorded closes %+v, want one %d", cl, tt.wantClose)
			}
		})
	}
}

func TestApplyOnlyNewerSeqs(t *testing.T) {
	c := New(Config{Name: "t"})
	for _, f := range []string{
		`{"t":"welcome","epoch":"e1","seq":2,"resume":"reset"}`,
		`{"t":"msg","seq":1,"cid":"a","text":"x"}`,
		`{"t":"msg","seq":2,"cid":"b","text":"y"}`,
		`{"t":"msg","seq":2,"cid":"b","text":"y"}`,
		`{"t":"resumed","seq":2}`,
		`{"t":"welcome","epoch":"e1","seq":3,"resume":"ok"}`,
		`{"t":"msg","seq":1,"cid":"a","text":"x"}`,
		`{"t":"msg","seq":3,"cid":"c","text":"z"}`,
		`{"t":"welcome","epoch":"e2","seq":1,"resume":"reset"}`,
		`{"t":"msg","seq":1,"cid":"d","text":"new history"}`,
	} {
		c.handle(nil, []byte(f), time.Now())
	}
	s := c.Snapshot()
	var got []uint64
	for _, m := range s.Applied {
		got = append(got, m.Seq)
	}
	if len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 1 || s.Applied[3].Epoch != "e2" {
		t.Fatalf("applied %v (%+v), want 1 2 3 then 1 under e2", got, s.Applied)
	}
	if s.Dupes != 2 || s.Gaps != 0 {
		t.Fatalf("got %d dupes %d gaps, want 2 and 0", s.Dupes, s.Gaps)
	}
	// A seq that skips one is a gap; the replay after a reset is not.
	c.handle(nil, []byte(`{"t":"msg","seq":3,"cid":"e","text":"skipped 2"}`), time.Now())
	c.handle(nil, []byte(`{"t":"welcome","epoch":"e3","seq":9,"resume":"reset"}`), time.Now())
	c.handle(nil, []byte(`{"t":"msg","seq":8,"cid":"f","text":"replay"}`), time.Now())
	if s := c.Snapshot(); s.Gaps != 1 {
		t.Fatalf("got %d gaps, want 1", s.Gaps)
	}
}

func TestBackoffStartsOverAfterResumed(t *testing.T) {
	// A proxy that cuts every connection once it is healthy (as kamal-proxy
	// does when it drains a target): each reconnect waits the first backoff
	// only, as the page does.
	attempt := 0
	for i := range 20 {
		if d := reconnectDelay(-1, true, &attempt); d < 0 || d >= backoffMin {
			t.Fatalf("cut %d after resumed: delay %v, want under %v", i+1, d, backoffMin)
		}
	}
	// A server that never lets the client resume is backed off from.
	attempt = 0
	for range 5 {
		reconnectDelay(-1, false, &attempt)
	}
	if attempt != 5 {
		t.Fatalf("after 5 abnormal closes without resumed: attempt %d, want 5", attempt)
	}
	if d := reconnectDelay(700*time.Millisecond, false, &attempt); d != 700*time.Millisecond || attempt != 0 {
		t.Fatalf("announced close: delay %v attempt %d, want 700ms and 0", d, attempt)
	}
}
