package zdt

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Table renders the comparison as Markdown: one row per scenario.
func Table(reps []*Report, l Load) string {
	var b strings.Builder
	healthyAfter := l.HealthyAfter
	if healthyAfter == 0 {
		healthyAfter = 2
	}
	fmt.Fprintf(&b, "Load: %d HTTP req/s through nginx (page + /healthz), %d WebSocket clients (%d offering move) in %d rooms each sending every %s, %d consecutive deploys of alternating builds; the agent's health gate wants %d consecutive 200s.\n\n",
		l.Rate, l.Clients, l.Movers, l.Rooms, l.Send, l.Deploys, healthyAfter)
	b.WriteString("| deployer | deploys ok | failed HTTP requests (per deploy) | s per deploy | WS messages lost | WS doubled | outboxes not empty | reconnect p50 / p99 | moves / movers' closes | hold → go p50 / p99 | msg delay p50 / p99 steady → during deploys | HTTP p99 steady → during deploys |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range reps {
		n := len(r.Deploys)
		per := 0.0
		if n > 0 {
			per = float64(r.HTTP.Failed) / float64(n)
		}
		lost, doubled, outbox, gaps, moves, holdGo, delay := "–", "–", "–", "–", "–", "–", "–"
		if r.WS != nil {
			lost = fmt.Sprint(r.WS.Lost + r.WS.Unacked)
			doubled = fmt.Sprint(r.WS.Doubled)
			outbox = fmt.Sprint(r.WS.NonEmptyOutbox)
			gaps = fmt.Sprintf("%s / %s", ms(r.WS.GapP50), ms(r.WS.GapP99))
			moves = fmt.Sprintf("%d / %d", r.WS.Moves, r.WS.MoverCloses)
			if r.WS.Moves > 0 {
				holdGo = fmt.Sprintf("%s / %s", ms1(r.WS.HoldGoP50), ms1(r.WS.HoldGoP99))
			}
			delay = fmt.Sprintf("%s / %s → %s / %s", ms1(r.WS.DelaySteady.P50), ms1(r.WS.DelaySteady.P99),
				ms1(r.WS.DelayDeploy.P50), ms1(r.WS.DelayDeploy.P99))
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %d of %d (%.1f) | %.1f | %s | %s | %s | %s | %s | %s | %s | %s → %s |\n",
			r.Name, n-r.FailedDeploys(), n, r.HTTP.Failed, r.HTTP.Total, per, r.MeanDeploy().Seconds(),
			lost, doubled, outbox, gaps, moves, holdGo, delay, ms(r.HTTP.Steady.P99), ms(r.HTTP.Deploy.P99))
	}
	return b.String()
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// ms1 keeps a tenth of a millisecond, for moves and deliveries that take a few.
func ms1(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// Details renders each scenario's failures by reason and, for the agent, the
// deploy steps' durations.
func Details(r *Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: HTTP %d/%d failed (%d during deploys); steady %s; deploys %s\n", r.Name, r.HTTP.Failed, r.HTTP.Total,
		r.HTTP.FailedInDeploy, r.HTTP.Steady, r.HTTP.Deploy)
	for reason, n := range r.HTTP.ByReason {
		fmt.Fprintf(&b, "  %6d × %s\n", n, reason)
	}
	if r.WS != nil {
		fmt.Fprintf(&b, "  ws: %s\n", r.WS)
		for _, c := range r.WS.Worst {
			fmt.Fprintf(&b, "  ws client %s room %s: lost %d doubled %d unacked %d outbox %d errors %v unresolved %d\n",
				c.Name, c.Room, c.Lost, c.Doubled, c.Unacked, c.OutboxLen, c.Errors, c.UnresolvedGaps)
		}
	}
	if len(r.Steps) > 0 || r.StepsErr != "" {
		fmt.Fprintf(&b, "  %s\n", StepsLine(r))
	}
	for i, d := range r.Deploys {
		fmt.Fprintf(&b, "  deploy %d %s exit %d in %.1fs\n", i+1, d.Image, d.Exit, d.Duration.Seconds())
	}
	return b.String()
}

// WSTable renders the deploys' durations and what the WebSocket clients saw
// across them, one row per scenario: the seconds per deploy (mean, median,
// slowest), how the clients' sockets ended (closes, of them abnormal: no
// close frame, 1006), how many came back to a new history (resets), the
// reconnect gap from a close to `resumed`, the moves, and the messages.
func WSTable(reps []*Report) string {
	var b strings.Builder
	b.WriteString("| deployer | s per deploy mean / median / max | failed HTTP | clients (offer move) | closes | abnormal (1006) | resets (history lost) | reconnect gap p50 / p99 / max | moves | lost / doubled / unacked |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range reps {
		ds := make([]time.Duration, len(r.Deploys))
		for i, d := range r.Deploys {
			ds[i] = d.Duration
		}
		slices.Sort(ds)
		var med, top time.Duration
		if n := len(ds); n > 0 {
			med, top = (ds[(n-1)/2]+ds[n/2])/2, ds[n-1]
		}
		fmt.Fprintf(&b, "| %s | %.2f / %.2f / %.2f | %d of %d |", r.Name, r.MeanDeploy().Seconds(), med.Seconds(), top.Seconds(), r.HTTP.Failed, r.HTTP.Total)
		ws := r.WS
		if ws == nil {
			b.WriteString(" 0 | – | – | – | – | – | – |\n")
			continue
		}
		fmt.Fprintf(&b, " %d (%d) | %d | %d | %d | %s / %s / %s | %d | %d / %d / %d |\n",
			ws.Clients, ws.Movers, ws.Reconnects, ws.Abnormal, ws.Resets, ms(ws.GapP50), ms(ws.GapP99), ms(ws.GapMax), ws.Moves,
			ws.Lost, ws.Doubled, ws.Unacked)
	}
	return b.String()
}
