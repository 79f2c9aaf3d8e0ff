package httpload

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunCountsFailuresAndRate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%5 == 0 {
			http.Error(w, "nope", http.StatusBadGateway)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	start := time.Now()
	rs, err := Run(t.Context(), Config{URLs: []string{srv.URL + "/a", srv.URL + "/b"}, Rate: 200, Duration: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Errorf("run took %s, want about 500ms at the fixed rate", el)
	}
	if got, want := len(rs), 100; got != want {
		t.Fatalf("got %d results, want %d", got, want)
	}
	s := Summarize(rs, nil)
	if got, want := s.Failed, 20; got != want {
		t.Errorf("got %d failed, want %d", got, want)
	}
	if got := s.ByReason["HTTP 502"]; got != 20 {
		t.Errorf("got %d HTTP 502, want 20 (reasons %v)", got, s.ByReason)
	}
	if s.Steady.Count != 80 || s.Deploy.Count != 0 {
		t.Errorf("got steady %d deploy %d, want 80 and 0", s.Steady.Count, s.Deploy.Count)
	}
}

func TestRunRecordsConnectionErrors(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	rs, err := Run(context.Background(), Config{URLs: []string{url}, Rate: 100, Duration: 100 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(rs, nil)
	if s.Total == 0 || s.Failed != s.Total {
		t.Errorf("got %d failed of %d, want all failed", s.Failed, s.Total)
	}
	if s.Failures[0].Err == "" {
		t.Errorf("got empty error for a refused connection")
	}
}

func TestSummarizeSplitsWindows(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var w Windows
	w.Add(t0.Add(10*time.Second), t0.Add(20*time.Second))
	rs := []Result{
		{Start: t0, Status: 200, Latency: time.Millisecond},
		{Start: t0.Add(15 * time.Second), Status: 200, Latency: 9 * time.Millisecond},
		{Start: t0.Add(16 * time.Second), Err: "EOF"},
		{Start: t0.Add(30 * time.Second), Status: 503},
	}
	s := Summarize(rs, &w)
	tests := []struct {
		name      string
		got, want int
	}{
		{"failed", s.Failed, 2},
		{"failed in deploy", s.FailedInDeploy, 1},
		{"steady count", s.Steady.Count, 1},
		{"deploy count", s.Deploy.Count, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %d, want %d", tt.got, tt.want)
			}
		})
	}
	if s.Deploy.P99 != 9*time.Millisecond {
		t.Errorf("got deploy p99 %s, want 9ms", s.Deploy.P99)
	}
}
