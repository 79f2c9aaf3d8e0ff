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
