package javaregex

import (
	"errors"
	"testing"
)

// TestJavaSemantics pins the differences from Go's regexp that make this
// package necessary: if these ever matched Go's behaviour, the JDK would not
// be the one answering.
func TestJavaSemantics(t *testing.T) {
	tests := []struct {
		pattern, value string
		want           bool
	}{
		{`^a$`, "a", true},
		{`^a$`, "a\n", true},     // Java: $ before a final line terminator
		{`^a$`, "a\r\n", true},   // ... including \r\n
		{`^a$`, "a\u0085", true}, // ... and NEL
		{`^a$`, "a\n\n", false},  // only one terminator
		{`^a\z`, "a\n", false},   // \z is the very end
		{`^a(?![\s\S])`, "a\n", false},
		{`^a\z`, "a", true},
		{`b`, "abc", true}, // find(), not matches()
		{`^[0-9a-f]{2}\z`, "0A", false},
	}
	cases := make([]Case, len(tests))
	for i, tt := range tests {
		cases[i] = Case{Pattern: tt.pattern, Value: tt.value}
	}
	got, err := Match(t.Context(), cases)
	if err != nil {
		t.Fatal(err)
	}
	for i, tt := range tests {
		if got[i] != tt.want {
			t.Errorf("%q against %q: got %v, want %v", tt.pattern, tt.value, got[i], tt.want)
		}
	}
}

func TestBadPattern(t *testing.T) {
	_, err := Match(t.Context(), []Case{{Pattern: "^a", Value: "a"}, {Pattern: "(", Value: "x"}})
	var pe *PatternError
	if !errors.As(err, &pe) || pe.Pattern != "(" {
		t.Fatalf("got %v, want a PatternError for %q", err, "(")
	}
}

func TestNoJava(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Match(t.Context(), []Case{{Pattern: "a", Value: "a"}}); !errors.Is(err, ErrNoJava) {
		t.Fatalf("got %v, want ErrNoJava", err)
	}
}
