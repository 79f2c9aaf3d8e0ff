package state

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStateRoundTrip(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	st, err := s.Load()
	if err != nil || st.Active != nil {
		t.Fatalf("empty Load = %+v, %v", st, err)
	}
	want := State{Active: &Release{ID: "r1", Color: "blue", Port: 8081, Since: time.Unix(1, 0).UTC()}}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || got.Active == nil || *got.Active != *want.Active || got.Previous != nil {
		t.Errorf("Load = %+v, %v, want %+v", got, err, want)
	}
	fi, _ := os.Stat(filepath.Join(s.Dir, "state.json"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestProgress(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if p, err := s.LoadProgress(); p != nil || err != nil {
		t.Fatalf("LoadProgress on empty = %v, %v", p, err)
	}
	p := &Progress{Record: Record{ID: "x"}, Step: "health"}
	if err := s.SaveProgress(p); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadProgress()
	if err != nil || got.Step != "health" || got.ID != "x" {
		t.Errorf("LoadProgress = %+v, %v", got, err)
	}
	if err := s.ClearProgress(); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.LoadProgress(); p != nil {
		t.Error("progress survived ClearProgress")
	}
}

func TestHistoryNewestFirstAndTornLine(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	for _, id := range []string{"a", "b", "c"} {
		if err := s.Append(Record{ID: id, Result: Succeeded}); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.OpenFile(filepath.Join(s.Dir, "journal.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"id":"torn`)
	f.Close()
	tests := []struct {
		n    int
		want string
	}{{0, "cba"}, {2, "cb"}, {10, "cba"}}
	for _, tt := range tests {
		recs, err := s.History(tt.n)
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, r := range recs {
			got += r.ID
		}
		if got != tt.want {
			t.Errorf("History(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

// TestHistoryJSONShape pins the keys history --json promises (docs/architecture.md): an empty detail and a
// record without steps still print "detail" and "steps":[] rather than leaving them out or null.
func TestHistoryJSONShape(t *testing.T) {
	s := Store{Dir: t.TempDir()}
	if err := s.Append(Record{ID: "a", Result: Failed, Steps: []Step{{Name: "validate"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(Record{ID: "b", Result: RolledBack}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.History(0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2", len(got))
	}
	for _, r := range got {
		for _, k := range []string{"id", "image", "digest", "color", "result", "reason", "started", "finished", "steps"} {
			if _, ok := r[k]; !ok {
				t.Errorf("record %v: key %q missing", r["id"], k)
			}
		}
		if _, ok := r["steps"].([]any); !ok {
			t.Errorf("record %v: steps = %#v, want an array", r["id"], r["steps"])
		}
	}
	step := got[1]["steps"].([]any)[0].(map[string]any)
	for _, k := range []string{"name", "at", "ms", "detail"} {
		if _, ok := step[k]; !ok {
			t.Errorf("step: key %q missing in %v", k, step)
		}
	}
}
