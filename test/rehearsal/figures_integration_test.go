//go:build integration

package rehearsal

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// scenarioFigures is what one scenario measured, printed as tables at the
// end of the run (BENCHMARKS.md's production-path section takes them).
type scenarioFigures struct {
	name     string
	rollouts []rolloutFigures
	users    []userFigures // per host, over the scenario's whole load
}

// rolloutFigures is one run of a workflow step: its exit code and wall
// time, each host's time (its SSM invocation, start to end) and the HTTP
// requests that started while it ran.
type rolloutFigures struct {
	label          string
	exit           int
	wall           time.Duration
	hostSeconds    map[string]float64 // by host name; absent: not run there
	requests, fail int
}

// userFigures is what users of one host saw during the scenario.
type userFigures struct {
	host                      string
	requests, failed, refused int
	closesWithFrame, cut      int
	sent, lost, doubled       int
	nginx                     string
}

var commandLine = regexp.MustCompile(`^command (\S+): (.*)$`)

// hostSeconds is how long each host's invocation ran, from the fake SSM's
// record of the commands the step sent (its "command ID: ..." lines).
func (w *world) hostSeconds(rr *rolloutRun) map[string]float64 {
	byID := map[string]string{}
	for _, h := range w.hosts {
		byID[h.id] = h.name
	}
	out := map[string]float64{}
	for _, line := range strings.Split(rr.out.String(), "\n") {
		m := commandLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, id := range strings.Fields(m[2]) {
			name, ok := byID[id]
			if !ok {
				continue
			}
			el, err := w.aws("ssm", "get-command-invocation", "--command-id", m[1], "--instance-id", id,
				"--query", "ExecutionElapsedTime", "--output", "text")
			if err != nil {
				continue
			}
			s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(el), "PT"), "S")
			if v, err := strconv.ParseFloat(s, 64); err == nil {
				out[name] = v
			}
		}
	}
	return out
}

// rolloutFigure sums up one run, with the HTTP requests (of every host)
// that started while it ran.
func (w *world) rolloutFigure(label string, rr *rolloutRun, outcome map[string]loadOutcome) rolloutFigures {
	f := rolloutFigures{label: label, exit: rr.exit, wall: rr.took, hostSeconds: w.hostSeconds(rr)}
	end := rr.start.Add(rr.took)
	for _, o := range outcome {
		for _, r := range o.results {
			if r.Start.Before(rr.start) || r.Start.After(end) {
				continue
			}
			f.requests++
			if !r.OK() {
				f.fail++
			}
		}
	}
	return f
}

// userFigure is one host's load outcome as a row; nginx says what happened
// to its nginx container ("" when not checked).
func userFigure(host string, o loadOutcome, nginx string) userFigures {
	c := o.Chat
	return userFigures{host: host, requests: o.Requests, failed: o.Failed, refused: o.Refused,
		closesWithFrame: c.Reconnects - c.Abnormal, cut: c.Abnormal, sent: c.Sent, lost: c.Lost, doubled: c.Doubled, nginx: nginx}
}

// record keeps a scenario's figures for the tables at the end.
func (w *world) record(f scenarioFigures) { w.figures = append(w.figures, f) }

// figureTables renders every scenario's figures as Markdown tables.
func (w *world) figureTables() string {
	var b strings.Builder
	fmt.Fprintf(&b, "figures of this run (%d hosts, %s):\n", len(w.hosts), w.shape)
	for _, s := range w.figures {
		fmt.Fprintf(&b, "\n### %s\n\n", s.name)
		if len(s.rollouts) > 0 {
			b.WriteString("| run | job exit | wall time |")
			for _, h := range w.hosts {
				fmt.Fprintf(&b, " %s s |", h.name)
			}
			b.WriteString(" failed / requests while it ran |\n|---|---|---|")
			for range w.hosts {
				b.WriteString("---|")
			}
			b.WriteString("---|\n")
			for _, r := range s.rollouts {
				fmt.Fprintf(&b, "| %s | %d | %.1f s |", r.label, r.exit, r.wall.Seconds())
				for _, h := range w.hosts {
					if v, ok := r.hostSeconds[h.name]; ok {
						fmt.Fprintf(&b, " %.1f |", v)
					} else {
						b.WriteString(" – |")
					}
				}
				fmt.Fprintf(&b, " %d / %d |\n", r.fail, r.requests)
			}
		}
		if len(s.users) > 0 {
			b.WriteString("\n| host | failed / requests | refused | WebSocket closes with a close frame | cut without one | chat sent | lost | doubled | nginx |\n")
			b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
			for _, u := range s.users {
				nginx := u.nginx
				if nginx == "" {
					nginx = "–"
				}
				fmt.Fprintf(&b, "| %s | %d / %d | %d | %d | %d | %d | %d | %d | %s |\n",
					u.host, u.failed, u.requests, u.refused, u.closesWithFrame, u.cut, u.sent, u.lost, u.doubled, nginx)
			}
		}
	}
	return b.String()
}
