package zdt

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mywebchat/mywebchat/test/e2e/stack"
)

// StepStat is one deploy step's duration over the measured deploys, from
// the agent's journal.
type StepStat struct {
	Name      string
	Count     int
	Mean, Max time.Duration
}

// AttachSteps reads `history --json` of every agent and records, for the
// deploys of rep, how long each step took. Journal entries are matched by
// start time, so the first (setup) deploy is left out.
func AttachSteps(ctx context.Context, rep *Report, agents ...*stack.Agent) {
	if len(rep.Deploys) == 0 {
		return
	}
	var hist []stack.Record
	for _, a := range agents {
		h, err := a.History(ctx)
		if err != nil {
			rep.StepsErr = err.Error()
			return
		}
		hist = append(hist, h...)
	}
	// Newest first, across agents, as one agent's history is.
	slices.SortStableFunc(hist, func(a, b stack.Record) int { return b.Started.Compare(a.Started) })
	first := rep.Deploys[0].Start.Add(-time.Second)
	idx := map[string]int{}
	// Oldest first, so steps keep the order the agent ran them in.
	for i := len(hist) - 1; i >= 0; i-- {
		h := hist[i]
		if h.Started.Before(first) {
			continue
		}
		for _, st := range h.Steps {
			j, ok := idx[st.Name]
			if !ok {
				j = len(rep.Steps)
				idx[st.Name] = j
				rep.Steps = append(rep.Steps, StepStat{Name: st.Name})
			}
			d := time.Duration(st.MS) * time.Millisecond
			s := &rep.Steps[j]
			s.Mean = (s.Mean*time.Duration(s.Count) + d) / time.Duration(s.Count+1)
			s.Count++
			s.Max = max(s.Max, d)
		}
	}
}

// StepsLine renders the step durations in one line.
func StepsLine(rep *Report) string {
	if rep.StepsErr != "" {
		return "steps: " + rep.StepsErr
	}
	var parts []string
	for _, s := range rep.Steps {
		parts = append(parts, fmt.Sprintf("%s %s (max %s)", s.Name, ms(s.Mean), ms(s.Max)))
	}
	return "steps (mean over deploys): " + strings.Join(parts, ", ")
}
