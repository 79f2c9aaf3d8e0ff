package stack

import (
	"context"
	"testing"
)

func TestShellQuoteRoundTrips(t *testing.T) {
	tests := []string{"plain", "with space", "it's", `"; rm -rf / #`, "$HOME `id`", ""}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			r := Shell(context.Background(), nil, "printf %s "+shellQuote(in))
			if r.Exit != 0 {
				t.Fatalf("exit %d: %s", r.Exit, r.Output)
			}
			if r.Output != in {
				t.Errorf("got %q, want %q", r.Output, in)
			}
		})
	}
}

func TestShellReportsExitCode(t *testing.T) {
	tests := []struct {
		line string
		want int
	}{{"true", 0}, {"exit 3", 3}, {"exit 4", 4}}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if got := Shell(context.Background(), nil, tt.line).Exit; got != tt.want {
				t.Errorf("got exit %d, want %d", got, tt.want)
			}
		})
	}
}
