// Package httpload is the end-to-end harness's HTTP load generator: it sends
// GET requests at a fixed rate, bounded in count and time, records every
// result, and summarises failures and latency percentiles separately for the
// steady state and for the windows in which a deploy was running.
package httpload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// maxInFlight caps concurrent requests so a stalled server cannot make the
// generator spawn goroutines without bound; a tick that finds the cap reached
// is recorded as a failure ("generator saturated"), because a user would have
// waited too.
const maxInFlight = 512

// Config says what to load and how hard. Zero Timeout means 5 s.
type Config struct {
	URLs        []string      // requested round-robin
	Rate        int           // requests per second, > 0
	Duration    time.Duration // stop after this long, > 0
	MaxRequests int           // and after this many; 0 means Rate × Duration
	Timeout     time.Duration // per request
	Client      *http.Client  // nil: a keep-alive client made for the run
}

// Result is one request's outcome. Err is empty and Status 200 on success.
type Result struct {
	Start   time.Time
	URL     string
	Status  int
	Err     string
	Latency time.Duration
}

// OK reports whether the request counts as served.
func (r Result) OK() bool { return r.Err == "" && r.Status == http.StatusOK }

// Run sends the load until the duration or count is reached or ctx is done,
// waits for the requests in flight, and returns every result in start order.
func Run(ctx context.Context, cfg Config) ([]Result, error) {
	if len(cfg.URLs) == 0 || cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, errors.New("httpload: URLs, Rate and Duration must be set")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	limit := cfg.MaxRequests
	if limit == 0 {
		limit = int(float64(cfg.Rate) * cfg.Duration.Seconds())
	}
	client := cfg.Client
	if client == nil {
		tr := &http.Transport{MaxIdleConnsPerHost: 128, IdleConnTimeout: 30 * time.Second, DisableCompression: true}
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr, Timeout: cfg.Timeout}
	}
	interval := time.Second / time.Duration(cfg.Rate)
	results := make([]Result, 0, limit)
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		sem = make(chan struct{}, maxInFlight)
	)
	record := func(r Result) {
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
	}
	begin := time.Now()
	deadline := begin.Add(cfg.Duration)
	for i := 0; i < limit; i++ {
		due := begin.Add(time.Duration(i) * interval)
		if due.After(deadline) {
			break
		}
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				wg.Wait()
				return sorted(results), nil
			case <-t.C:
			}
		} else if ctx.Err() != nil {
			break
		}
		url := cfg.URLs[i%len(cfg.URLs)]
		select {
		case sem <- struct{}{}:
		default:
			record(Result{Start: due, URL: url, Err: "generator saturated"})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// Requests in flight when the run ends finish on their own
			// (bounded by the client timeout): cutting them would count
			// as failures the server never caused.
			record(get(context.WithoutCancel(ctx), client, url))
		}()
	}
	wg.Wait()
	return sorted(results), nil
}

func get(ctx context.Context, client *http.Client, url string) Result {
	start := time.Now()
	r := Result{Start: start, URL: url}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		r.Err = err.Error()
		return r
	}
	resp, err := client.Do(req)
	if err != nil {
		r.Err = err.Error()
		r.Latency = time.Since(start)
		return r
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	r.Status = resp.StatusCode
	r.Latency = time.Since(start)
	if err != nil {
		r.Err = fmt.Sprintf("read body: %v", err)
	}
	return r
}

func sorted(rs []Result) []Result {
	slices.SortFunc(rs, func(a, b Result) int { return a.Start.Compare(b.Start) })
	return rs
}
