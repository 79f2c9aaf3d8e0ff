package wsfleet

import (
	"reflect"
	"testing"
	"time"
)

func TestAnalyze(t *testing.T) {
	t0 := time.Unix(1000, 0)
	e := func(seq uint64) []Position { return []Position{{"e1", seq}} }
	tests := []struct {
		name    string
		records []Record
		want    Report
	}{
		{
			name: "clean run",
			records: []Record{
				{Name: "a", Room: "r", Sent: []string{"a1"}, Acked: map[string]Position{"a1": {"e1", 1}},
					Received: map[string][]Position{"a1": e(1), "b1": e(2)}},
				{Name: "b", Room: "r", Sent: []string{"b1"}, Acked: map[string]Position{"b1": {"e1", 2}},
					Received: map[string][]Position{"a1": append(e(1), e(1)...), "b1": e(2)}},
			},
			want: Report{Clients: 2, Rooms: 1, Sent: 2, Acked: 2},
		},
		{
			name: "lost, doubled and unacked",
			records: []Record{
				{Name: "a", Room: "r", Sent: []string{"a1", "a2"}, Acked: map[string]Position{"a1": {"e1", 1}},
					Received: map[string][]Position{"a1": e(1)}, OutboxLen: 1},
				{Name: "b", Room: "r", Received: map[string][]Position{"a1": {{"e1", 1}, {"e2", 1}}}},
				{Name: "c", Room: "other", Received: map[string][]Position{}},
			},
			want: Report{Clients: 3, Rooms: 2, Sent: 2, Acked: 1, Lost: 2, Doubled: 1, Unacked: 1, NonEmptyOutbox: 1},
		},
		{
			name: "reconnect gaps",
			records: []Record{
				{Name: "a", Room: "r", Closes: []time.Time{t0, t0.Add(10 * time.Second), t0.Add(20 * time.Second)},
					Resumed: []time.Time{t0.Add(100 * time.Millisecond), t0.Add(10*time.Second + 300*time.Millisecond)},
					Errors:  []string{"error draining", "error rate_limited"}, Resets: 1},
				{Name: "b", Room: "r", Errors: []string{"error draining", "error draining"}},
			},
			want: Report{Clients: 2, Rooms: 1, Reconnects: 3, Unresolved: 1, ClientsErrored: 1, DrainErrors: 3, Resets: 1,
				GapP50: 300 * time.Millisecond, GapP99: 300 * time.Millisecond, GapMax: 300 * time.Millisecond},
		},
		{
			name: "moves",
			records: []Record{
				{Name: "a", Room: "r", Mover: true, Holds: 2, HoldToGo: []time.Duration{2 * time.Millisecond, 5 * time.Millisecond}},
				{Name: "b", Room: "r", Mover: true, Holds: 1, Closes: []time.Time{t0}, Resumed: []time.Time{t0.Add(time.Second)}},
				{Name: "c", Room: "r", Closes: []time.Time{t0}, Resumed: []time.Time{t0.Add(time.Second)}},
			},
			want: Report{Clients: 3, Rooms: 1, Reconnects: 2, Movers: 2, MoverCloses: 1, Moves: 2, MovesUnfinished: 1,
				GapP50: time.Second, GapP99: time.Second, GapMax: time.Second,
				HoldGoP50: 5 * time.Millisecond, HoldGoP99: 5 * time.Millisecond, HoldGoMax: 5 * time.Millisecond},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Analyze(tt.records)
			got.Worst = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDelays(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// A deploy ran from 9 s to 10.1 s: a2 was sent during it and arrived after.
	inDeploy := func(t time.Time) bool { return !t.Before(at(9*time.Second)) && !t.After(at(10*time.Second+ms(100))) }
	records := []Record{
		{Name: "a", Room: "r", Sent: []string{"a1", "a2"},
			SentAt: map[string]time.Time{"a1": t0, "a2": at(10 * time.Second)},
			// Its own message coming back is no delivery to another member.
			ReceivedAt: map[string]time.Time{"a1": at(ms(1)), "a2": at(10*time.Second + ms(1)), "b1": at(time.Second + ms(20))}},
		{Name: "b", Room: "r", Sent: []string{"b1"},
			SentAt:     map[string]time.Time{"b1": at(time.Second)},
			ReceivedAt: map[string]time.Time{"a1": at(ms(5)), "a2": at(10*time.Second + ms(300)), "b1": at(time.Second + ms(2))}},
		// c never got a2: a loss, which Analyze counts, not a delay.
		{Name: "c", Room: "r", ReceivedAt: map[string]time.Time{"a1": at(ms(7)), "b1": at(time.Second + ms(30))}},
		// d is in another room: a cid of room r arriving there is not r's delivery.
		{Name: "d", Room: "other", ReceivedAt: map[string]time.Time{"a1": at(ms(900))}},
	}
	tests := []struct {
		name           string
		inDeploy       func(time.Time) bool
		steady, deploy Delay
	}{
		{"split by send time", inDeploy,
			Delay{Count: 4, P50: ms(20), P99: ms(30), Max: ms(30)},
			Delay{Count: 1, P50: ms(300), P99: ms(300), Max: ms(300)}},
		{"no deploys", nil,
			Delay{Count: 5, P50: ms(20), P99: ms(300), Max: ms(300)},
			Delay{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steady, deploy := Delays(records, tt.inDeploy)
			if steady != tt.steady || deploy != tt.deploy {
				t.Errorf("got steady %+v deploy %+v\nwant steady %+v deploy %+v", steady, deploy, tt.steady, tt.deploy)
			}
		})
	}
}
