package wsfleet

import (
	"fmt"
	"slices"
	"time"
)

// Position is where a message landed in a room's history. A replay of the
// same position is benign (clients apply a seq once); the same cid at two
// positions is a doubled message.
type Position struct {
	Epoch string
	Seq   uint64
}

// Record is what one client saw during a run, the input of Analyze.
type Record struct {
	Name      string
	Room      string
	Sent      []string            // cids in send order
	Acked     map[string]Position // cid → where the server put it
	Received  map[string][]Position
	Closes    []time.Time // every time the socket went away
	Resumed   []time.Time // every `resumed` after a reconnect (not the first)
	Errors    []string    // error frames and dial failures, as codes or messages
	Resets    int         // welcome resume:"reset" after the first welcome
	Abnormal  int         // connections that ended without a close frame (1006)
	OutboxLen int         // unacked sends left at the end
	// Mover is true for a client that offered caps:["move"].
	Mover bool
	// HoldToGo is, per completed move, the time from hold to go.
	HoldToGo []time.Duration
	// Holds counts the holds the client got, completed by go or not.
	Holds int
	// SentAt is when each of its sends was handed to the client (cid →
	// time); ReceivedAt when each message of its room first arrived. All
	// clients share one clock, so a receiver's time minus the sender's is
	// that message's delivery delay.
	SentAt     map[string]time.Time
	ReceivedAt map[string]time.Time
}

// ClientReport is the verdict on one client.
type ClientReport struct {
	Name            string
	Room            string
	Lost            int // messages of its room it never received
	Doubled         int // extra positions of a message it received
	Unacked         int // its own sends never acknowledged
	OutboxLen       int
	Errors          []string
	Resets          int
	Gaps            []time.Duration // close → resumed
	UnresolvedGaps  int             // a close never followed by `resumed`
	ReceivedMatched int             // messages of its room it received exactly once
}

// Report sums a fleet run.
type Report struct {
	Clients        int
	Rooms          int
	Sent           int
	Acked          int
	Lost           int // summed over clients
	Doubled        int // summed over clients
	Unacked        int
	NonEmptyOutbox int // clients whose outbox did not empty
	// ClientsErrored counts clients that saw an error frame or a dial
	// failure, other than DrainErrors: a send that reaches a draining color
	// gets `error draining`, the protocol's documented "keep it queued and
	// resend", so it is counted apart and judged by Lost/Doubled/Unacked.
	ClientsErrored int
	DrainErrors    int
	Resets         int
	Reconnects     int
	Unresolved     int
	Abnormal       int // connections cut without a close frame, summed over clients
	GapP50         time.Duration
	GapP99         time.Duration
	GapMax         time.Duration
	// Movers is how many clients offered caps:["move"]; MoverCloses counts
	// their closes (a move that worked closes nothing) and Moves their
	// completed moves (hold … go), MovesUnfinished those that never got go.
	Movers          int
	MoverCloses     int
	Moves           int
	MovesUnfinished int
	HoldGoP50       time.Duration
	HoldGoP99       time.Duration
	HoldGoMax       time.Duration
	// DelaySteady and DelayDeploy are the delivery delays of `msg` (from
	// the sender's send to each other member's receipt) of messages sent in
	// steady state and of those sent while a deploy was in progress.
	DelaySteady Delay
	DelayDeploy Delay
	Worst       []ClientReport // up to 5 clients with problems, for the log
}

// Delay sums a set of delivery delays.
type Delay struct {
	Count         int // deliveries measured (messages × receivers)
	P50, P99, Max time.Duration
}

func (d Delay) String() string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", d.Count, d.P50.Round(100*time.Microsecond),
		d.P99.Round(100*time.Microsecond), d.Max.Round(100*time.Microsecond))
}

// String is a one-line summary for logs and test output.
func (r Report) String() string {
	return fmt.Sprintf("clients=%d rooms=%d sent=%d acked=%d lost=%d doubled=%d unacked=%d non-empty-outbox=%d errored=%d drain-errors=%d resets=%d reconnects=%d abnormal-closes=%d unresolved=%d gap p50=%s p99=%s max=%s",
		r.Clients, r.Rooms, r.Sent, r.Acked, r.Lost, r.Doubled, r.Unacked, r.NonEmptyOutbox, r.ClientsErrored, r.DrainErrors,
		r.Resets, r.Reconnects, r.Abnormal, r.Unresolved, r.GapP50.Round(time.Millisecond), r.GapP99.Round(time.Millisecond), r.GapMax.Round(time.Millisecond)) +
		fmt.Sprintf(" movers=%d mover-closes=%d moves=%d unfinished=%d hold→go p50=%s p99=%s max=%s",
			r.Movers, r.MoverCloses, r.Moves, r.MovesUnfinished, r.HoldGoP50.Round(100*time.Microsecond),
			r.HoldGoP99.Round(100*time.Microsecond), r.HoldGoMax.Round(100*time.Microsecond)) +
		fmt.Sprintf(" msg delay steady %s, during deploys %s", r.DelaySteady, r.DelayDeploy)
}

// Delays measures how long each message took from its sender's send to its
// arrival at every other member of the room, split by whether it was sent
// while a deploy was in progress (inDeploy true; nil means never). A message
// a member never received is not a delay: Analyze counts it as lost.
func Delays(records []Record, inDeploy func(time.Time) bool) (steady, deploy Delay) {
	type origin struct {
		at     time.Time
		sender int
	}
	sent := map[string]map[string]origin{} // room → cid → origin
	for i, rec := range records {
		if sent[rec.Room] == nil {
			sent[rec.Room] = map[string]origin{}
		}
		for cid, at := range rec.SentAt {
			sent[rec.Room][cid] = origin{at, i}
		}
	}
	var st, dp []time.Duration
	for i, rec := range records {
		for cid, at := range rec.ReceivedAt {
			o, ok := sent[rec.Room][cid]
			if !ok || o.sender == i {
				continue
			}
			if inDeploy != nil && inDeploy(o.at) {
				dp = append(dp, at.Sub(o.at))
			} else {
				st = append(st, at.Sub(o.at))
			}
		}
	}
	steady.Count, deploy.Count = len(st), len(dp)
	steady.P50, steady.P99, steady.Max = quantiles(st)
	deploy.P50, deploy.P99, deploy.Max = quantiles(dp)
	return steady, deploy
}

// Analyze judges every client against its room: each client must have
// received every message any client of its room sent, exactly once, and all
// of its own sends must be acknowledged. All clients join before anyone
// sends, so every message of the run belongs to every member's view.
func Analyze(records []Record) Report {
	sentByRoom := map[string][]string{}
	rooms := map[string]bool{}
	for _, rec := range records {
		rooms[rec.Room] = true
		sentByRoom[rec.Room] = append(sentByRoom[rec.Room], rec.Sent...)
	}
	rep := Report{Clients: len(records), Rooms: len(rooms)}
	var gaps, holdGo []time.Duration
	var problems []ClientReport
	for _, rec := range records {
		cr := judge(rec, sentByRoom[rec.Room])
		rep.Sent += len(rec.Sent)
		rep.Acked += len(rec.Sent) - cr.Unacked
		rep.Lost += cr.Lost
		rep.Doubled += cr.Doubled
		rep.Unacked += cr.Unacked
		rep.Resets += cr.Resets
		rep.Reconnects += len(rec.Closes)
		if rec.Mover {
			rep.Movers++
			rep.MoverCloses += len(rec.Closes)
		}
		rep.Moves += len(rec.HoldToGo)
		rep.MovesUnfinished += rec.Holds - len(rec.HoldToGo)
		holdGo = append(holdGo, rec.HoldToGo...)
		rep.Unresolved += cr.UnresolvedGaps
		rep.Abnormal += rec.Abnormal
		if cr.OutboxLen > 0 {
			rep.NonEmptyOutbox++
		}
		drain := drainErrors(cr.Errors)
		rep.DrainErrors += drain
		if len(cr.Errors) > drain {
			rep.ClientsErrored++
		}
		gaps = append(gaps, cr.Gaps...)
		if cr.Lost > 0 || cr.Doubled > 0 || cr.Unacked > 0 || cr.OutboxLen > 0 || len(cr.Errors) > drain || cr.UnresolvedGaps > 0 {
			problems = append(problems, cr)
		}
	}
	// The worst first: lost or doubled messages matter more than errors.
	slices.SortStableFunc(problems, func(a, b ClientReport) int {
		return (b.Lost + b.Doubled + b.Unacked + b.OutboxLen) - (a.Lost + a.Doubled + a.Unacked + a.OutboxLen)
	})
	rep.Worst = problems[:min(5, len(problems))]
	rep.GapP50, rep.GapP99, rep.GapMax = quantiles(gaps)
	rep.HoldGoP50, rep.HoldGoP99, rep.HoldGoMax = quantiles(holdGo)
	return rep
}

// drainError is how Record.Errors spells the protocol's `error draining`.
const drainError = "error draining"

func drainErrors(errs []string) int {
	n := 0
	for _, e := range errs {
		if e == drainError {
			n++
		}
	}
	return n
}

func judge(rec Record, roomSent []string) ClientReport {
	cr := ClientReport{Name: rec.Name, Room: rec.Room, OutboxLen: rec.OutboxLen, Errors: rec.Errors, Resets: rec.Resets}
	for _, cid := range rec.Sent {
		if _, ok := rec.Acked[cid]; !ok {
			cr.Unacked++
		}
	}
	for _, cid := range roomSent {
		ps := distinct(rec.Received[cid])
		switch {
		case len(ps) == 0:
			cr.Lost++
		default:
			cr.ReceivedMatched++
			cr.Doubled += len(ps) - 1
		}
	}
	// Pair each close with the first `resumed` after it.
	j := 0
	for _, c := range rec.Closes {
		for j < len(rec.Resumed) && rec.Resumed[j].Before(c) {
			j++
		}
		if j == len(rec.Resumed) {
			cr.UnresolvedGaps++
			continue
		}
		cr.Gaps = append(cr.Gaps, rec.Resumed[j].Sub(c))
		j++
	}
	return cr
}

func distinct(ps []Position) []Position {
	var out []Position
	for _, p := range ps {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// quantiles returns p50, p99 and the maximum of ds (zeros when empty); ds is sorted.
func quantiles(ds []time.Duration) (p50, p99, top time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return ds[int(0.5*float64(len(ds)-1)+0.5)], ds[int(0.99*float64(len(ds)-1)+0.5)], ds[len(ds)-1]
}
