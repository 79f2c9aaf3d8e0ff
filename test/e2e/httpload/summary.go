package httpload

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Windows records the time ranges in which a deploy was running, so results
// can be split into steady state and during-deploy. Safe for concurrent use.
type Windows struct {
	mu     sync.Mutex
	ranges [][2]time.Time
}

// Add records one deploy window.
func (w *Windows) Add(start, end time.Time) {
	w.mu.Lock()
	w.ranges = append(w.ranges, [2]time.Time{start, end})
	w.mu.Unlock()
}

// Contains reports whether t falls inside a recorded window.
func (w *Windows) Contains(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.ranges {
		if !t.Before(r[0]) && !t.After(r[1]) {
			return true
		}
	}
	return false
}

// Latency holds percentiles of one set of requests.
type Latency struct {
	Count         int
	P50, P99, Max time.Duration
}

func (l Latency) String() string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", l.Count, l.P50.Round(time.Microsecond*10), l.P99.Round(time.Microsecond*10), l.Max.Round(time.Microsecond*10))
}

// Summary is what a run amounts to.
type Summary struct {
	Total, Failed  int
	FailedInDeploy int
	Failures       []Result // the first maxFailures failures, for the report
	ByReason       map[string]int
	Steady, Deploy Latency
}

const maxFailures = 20

// Summarize splits results by windows (nil: all steady) and computes counts
// and percentiles over successful requests.
func Summarize(rs []Result, w *Windows) Summary {
	s := Summary{Total: len(rs), ByReason: map[string]int{}}
	var steady, deploy []time.Duration
	for _, r := range rs {
		in := w != nil && w.Contains(r.Start)
		if !r.OK() {
			s.Failed++
			if in {
				s.FailedInDeploy++
			}
			reason := r.Err
			if reason == "" {
				reason = fmt.Sprintf("HTTP %d", r.Status)
			}
			s.ByReason[reason]++
			if len(s.Failures) < maxFailures {
				s.Failures = append(s.Failures, r)
			}
			continue
		}
		if in {
			deploy = append(deploy, r.Latency)
		} else {
			steady = append(steady, r.Latency)
		}
	}
	s.Steady, s.Deploy = percentiles(steady), percentiles(deploy)
	return s
}

func percentiles(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(ds)-1) + 0.5)
		return ds[i]
	}
	return Latency{Count: len(ds), P50: at(0.50), P99: at(0.99), Max: ds[len(ds)-1]}
}
