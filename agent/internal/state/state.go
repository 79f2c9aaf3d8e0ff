// Package state keeps the agent's durable truth under state_dir: state.json (active and previous
// release), progress.json (the deploy in flight, rewritten before every step so a crashed agent
// knows where it was) and journal.jsonl (the audit history). Every rewrite is atomic.
package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mywebchat/mywebchat/agent/internal/atomicfile"
)

// Kinds of journaled records: a requested deploy or rollback (the queue's request kinds too), or a
// switch that reconcile made on its own.
const (
	KindDeploy    = "deploy"
	KindRollback  = "rollback"
	KindReconcile = "reconcile"
)

// Results of a deploy as written to the journal.
const (
	Succeeded  = "succeeded"
	Failed     = "failed"
	RolledBack = "rolled_back"
)

// Release is one deployed image in one color.
type Release struct {
	ID     string `json:"id"`
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// ImageID is the local image ID (sha256:…); it equals Digest for locally built images.
	ImageID string `json:"image_id"`
	// Run is what the container runs: repo@sha256:… or the image ID.
	Run       string    `json:"run"`
	Color     string    `json:"color"`
	Port      int       `json:"port"`
	Container string    `json:"container"`
	Since     time.Time `json:"since"`
}

// RunRef is the pinned reference to run this release again.
func (r *Release) RunRef() string {
	if r.Run != "" {
		return r.Run
	}
	return r.Digest
}

// State is state.json. A nil Active means nothing was ever deployed.
type State struct {
	Active   *Release `json:"active"`
	Previous *Release `json:"previous"`
}

// Step is one step of a deploy as journaled.
type Step struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
	MS   int64     `json:"ms"`
	// Detail is always present in the JSON (history --json promises name, at, ms, detail).
	Detail string `json:"detail"`
}

// Record is one deploy in the journal (history --json prints these).
type Record struct {
	ID     string `json:"id"`
	Kind   string `json:"kind,omitempty"`
	Image  string `json:"image"`
	Digest string `json:"digest"`
	// ImageID is the local image ID; pruning removes only images named here.
	ImageID  string    `json:"image_id,omitempty"`
	Color    string    `json:"color"`
	Result   string    `json:"result"`
	Reason   string    `json:"reason"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Steps    []Step    `json:"steps"`
}

// Progress is the deploy in flight: the record so far plus what is needed to finish or undo it.
type Progress struct {
	Record
	// Step is the step that was about to start (or running) when this was written.
	Step string `json:"step"`
	// New is the release being deployed, set once its color is known.
	New *Release `json:"new,omitempty"`
	// Before is state.json as it was when the deploy started.
	Before State `json:"before"`
}

// Store reads and writes the files in Dir.
type Store struct{ Dir string }

func (s Store) path(name string) string { return filepath.Join(s.Dir, name) }

// Load reads state.json; a missing file is the empty state.
func (s Store) Load() (State, error) {
	var st State
	err := readJSON(s.path("state.json"), &st)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	return st, err
}

// Save writes state.json atomically.
func (s Store) Save(st State) error { return writeJSON(s.path("state.json"), st) }

// LoadProgress returns the deploy in flight, or nil.
func (s Store) LoadProgress() (*Progress, error) {
	var p Progress
	err := readJSON(s.path("progress.json"), &p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// SaveProgress writes progress.json atomically.
func (s Store) SaveProgress(p *Progress) error { return writeJSON(s.path("progress.json"), p) }

// ClearProgress removes progress.json once a deploy has ended and is journaled.
func (s Store) ClearProgress() error {
	if err := os.Remove(s.path("progress.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clear progress: %w", err)
	}
	return atomicfile.SyncDir(s.Dir)
}

// maxJournalBytes bounds journal.jsonl; beyond it the oldest half is dropped.
const maxJournalBytes = 4 << 20

// Append adds r to the journal.
func (s Store) Append(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	p := s.path("journal.jsonl")
	if fi, err := os.Stat(p); err == nil && fi.Size() > maxJournalBytes {
		if err := s.trimJournal(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

func (s Store) trimJournal() error {
	all, err := s.History(0)
	if err != nil {
		return err
	}
	keep := all[:len(all)/2]
	var buf bytes.Buffer
	for i := len(keep) - 1; i >= 0; i-- {
		b, _ := json.Marshal(keep[i])
		buf.Write(append(b, '\n'))
	}
	return atomicfile.WriteFile(s.path("journal.jsonl"), buf.Bytes(), 0o600)
}

// History returns up to n journal records, newest first; n <= 0 means all.
// A torn last line (a crash mid-append) is skipped.
func (s Store) History(n int) ([]Record, error) {
	f, err := os.Open(s.path("journal.jsonl"))
	if errors.Is(err, fs.ErrNotExist) {
		return []Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	var recs []Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.ID != "" {
			if r.Steps == nil {
				r.Steps = []Step{} // history --json promises an array, never null
			}
			recs = append(recs, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	out := make([]Record, 0, len(recs))
	for i := len(recs) - 1; i >= 0 && (n <= 0 || len(out) < n); i-- {
		out = append(out, recs[i])
	}
	return out, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}
