// Package queue is the durable request queue between the deploy-agent CLI and the daemon, on disk
// under state_dir: requests in queue/ (written atomically, one file each), progress events and the
// outcome of each deploy in deploys/<id>/, and the agent.lock flock that tells whether the daemon runs.
package queue

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mywebchat/mywebchat/agent/internal/atomicfile"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// Limits that keep a full or garbage queue from hurting the daemon.
const (
	// MaxRequestBytes bounds one request file; a real one is about 200 bytes.
	MaxRequestBytes = 4 << 10
	// MaxPending bounds the number of request files the daemon looks at.
	MaxPending = 16
	// maxImageLen bounds an image reference (the registry limit is 255 for names plus tag/digest).
	maxImageLen = 512
	// keepDeploys is how many deploys/<id> folders are kept.
	keepDeploys = 50
)

var (
	// ErrBusy means a deploy is queued or running.
	ErrBusy = errors.New("another deploy is running")
	// ErrFull means the queue holds MaxPending requests already.
	ErrFull = errors.New("the deploy queue is full")
	// ErrBadRequest marks a request file that is too large or not a valid request.
	ErrBadRequest = errors.New("bad request file")
)

// Request is one queued deploy or rollback.
type Request struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Image     string    `json:"image,omitempty"`
	Requested time.Time `json:"requested"`
}

// Event is one progress line of a deploy (events.jsonl).
type Event struct {
	At     time.Time `json:"at"`
	Step   string    `json:"step"`
	Status string    `json:"status"` // started, failed, info
	Detail string    `json:"detail,omitempty"`
}

// Result is the outcome of a request (result.json). Exit is the CLI exit code it maps to.
type Result struct {
	ID       string    `json:"id"`
	Result   string    `json:"result"`
	Exit     int       `json:"exit"`
	Message  string    `json:"message"`
	Image    string    `json:"image,omitempty"`
	Digest   string    `json:"digest,omitempty"`
	Color    string    `json:"color,omitempty"`
	Finished time.Time `json:"finished"`
}

// Queue is the on-disk queue rooted at a state dir.
type Queue struct{ StateDir string }

func (q Queue) queueDir() string           { return filepath.Join(q.StateDir, "queue") }
func (q Queue) deployDir(id string) string { return filepath.Join(q.StateDir, "deploys", id) }

// LockPath is the daemon's flock file.
func (q Queue) LockPath() string { return filepath.Join(q.StateDir, "agent.lock") }

var idRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// NewID returns a sortable unique request id.
func NewID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id has the shape NewID gives; only such ids name files.
func ValidID(id string) bool { return idRE.MatchString(id) }

// Init creates the state dir layout with root-only permissions.
func (q Queue) Init() error {
	for _, d := range []string{q.StateDir, q.queueDir(), filepath.Join(q.StateDir, "deploys")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
	}
	return nil
}

// Enqueue writes req atomically unless a deploy is pending or busy reports one running.
// Clients serialize on queue/.lock so two deploys cannot both see an idle agent.
func (q Queue) Enqueue(req Request, busy func() error) error {
	if !ValidID(req.ID) {
		return fmt.Errorf("%w: id %q", ErrBadRequest, req.ID)
	}
	lf, err := os.OpenFile(filepath.Join(q.queueDir(), ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("queue lock: %w", err)
	}
	pending, err := q.Pending()
	if err != nil {
		return err
	}
	if len(pending) >= MaxPending {
		return ErrFull
	}
	if len(pending) > 0 {
		other, rerr := q.Read(pending[0])
		if rerr != nil {
			return fmt.Errorf("%w: request %s is queued", ErrBusy, pending[0])
		}
		return fmt.Errorf("%w: %s %s (id %s) is queued, not started yet", ErrBusy, other.Kind, other.Image, other.ID)
	}
	if busy != nil {
		if err := busy(); err != nil {
			return err
		}
	}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(q.queueDir(), req.ID+".json"), b, 0o600)
}

// Pending lists the ids (file names without .json) of queued requests, oldest first, at most
// MaxPending. Names that are not ids are included so the daemon can reject them.
func (q Queue) Pending() ([]string, error) {
	entries, err := os.ReadDir(q.queueDir())
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var ids []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		ids = append(ids, strings.TrimSuffix(name, ".json"))
	}
	sort.Strings(ids)
	if len(ids) > MaxPending {
		ids = ids[:MaxPending]
	}
	return ids, nil
}

// Read loads and validates one queued request.
func (q Queue) Read(id string) (Request, error) {
	f, err := os.Open(filepath.Join(q.queueDir(), id+".json"))
	if err != nil {
		return Request{}, fmt.Errorf("queue: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxRequestBytes+1))
	if err != nil {
		return Request{}, fmt.Errorf("queue: %w", err)
	}
	if len(b) > MaxRequestBytes {
		return Request{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadRequest, id, MaxRequestBytes)
	}
	var r Request
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Request{}, fmt.Errorf("%w: %s: %w", ErrBadRequest, id, err)
	}
	switch {
	case r.ID != id || !ValidID(id):
		return Request{}, fmt.Errorf("%w: %s: id does not match the file name", ErrBadRequest, id)
	case r.Kind != state.KindDeploy && r.Kind != state.KindRollback:
		return Request{}, fmt.Errorf("%w: %s: unknown kind %q", ErrBadRequest, id, r.Kind)
	case r.Kind == state.KindDeploy && (r.Image == "" || len(r.Image) > maxImageLen):
		return Request{}, fmt.Errorf("%w: %s: image missing or too long", ErrBadRequest, id)
	}
	return r, nil
}

// Remove deletes a queued request file (id may be any pending name).
func (q Queue) Remove(id string) error {
	if err := os.Remove(filepath.Join(q.queueDir(), id+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// Has reports whether the request id is still queued.
func (q Queue) Has(id string) bool {
	_, err := os.Stat(filepath.Join(q.queueDir(), id+".json"))
	return err == nil
}

// Age returns how long ago the request file id was last modified.
func (q Queue) Age(id string) time.Duration {
	fi, err := os.Stat(filepath.Join(q.queueDir(), id+".json"))
	if err != nil {
		return 0
	}
	return time.Since(fi.ModTime())
}

// QueueDir is the folder the daemon watches.
func (q Queue) QueueDir() string { return q.queueDir() }

// AppendEvent adds one progress line for deploy id.
func (q Queue) AppendEvent(id string, ev Event) error {
	dir := q.deployDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "events.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	return f.Sync()
}

// WriteResult records the outcome of id atomically.
func (q Queue) WriteResult(r Result) error {
	dir := q.deployDir(r.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("result: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("result: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, "result.json"), append(b, '\n'), 0o600)
}

// ReadResult returns the outcome of id, or fs.ErrNotExist while it runs.
func (q Queue) ReadResult(id string) (Result, error) {
	var r Result
	b, err := os.ReadFile(filepath.Join(q.deployDir(id), "result.json"))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("result %s: %w", id, err)
	}
	return r, nil
}

// followPoll is how often Follow looks for new events and the result: `deploy --wait` exits
// when it sees the result, so a coarse poll would add its half on average to every deploy's
// time as the caller sees it. followAlive is how often it asks whether the agent still runs.
const (
	followPoll  = 10 * time.Millisecond
	followAlive = 100 * time.Millisecond
)

// Follow calls onEvent for each event of id as it is written, until result.json appears or
// ctx ends. alive is asked between polls; when it returns an error Follow stops with it.
func (q Queue) Follow(ctx context.Context, id string, onEvent func(Event), alive func() error) (Result, error) {
	var offset int64
	t := time.NewTicker(followPoll)
	defer t.Stop()
	var asked time.Time
	for {
		offset = q.readEvents(id, offset, onEvent)
		if r, err := q.ReadResult(id); err == nil {
			q.readEvents(id, offset, onEvent)
			return r, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return Result{}, err
		}
		if alive != nil && time.Since(asked) >= followAlive {
			asked = time.Now()
			if err := alive(); err != nil {
				return Result{}, err
			}
		}
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-t.C:
		}
	}
}

func (q Queue) readEvents(id string, offset int64, onEvent func(Event)) int64 {
	f, err := os.Open(filepath.Join(q.deployDir(id), "events.jsonl"))
	if err != nil {
		return offset
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return offset // a partial line is read again next time
		}
		offset += int64(len(line))
		var ev Event
		if json.Unmarshal(line, &ev) == nil {
			onEvent(ev)
		}
	}
}

// PruneDeploys keeps the newest keepDeploys deploy folders.
func (q Queue) PruneDeploys() error {
	entries, err := os.ReadDir(filepath.Join(q.StateDir, "deploys"))
	if err != nil {
		return fmt.Errorf("prune deploys: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && ValidID(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	for len(ids) > keepDeploys {
		if err := os.RemoveAll(q.deployDir(ids[0])); err != nil {
			return fmt.Errorf("prune deploys: %w", err)
		}
		ids = ids[1:]
	}
	return nil
}

// ErrLocked means another daemon holds agent.lock.
var ErrLocked = errors.New("another deploy-agent daemon holds the lock")

// Lock takes the daemon's exclusive flock on agent.lock. Keep the file open while running.
func (q Queue) Lock() (*os.File, error) {
	f, err := os.OpenFile(q.LockPath(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s)", ErrLocked, q.LockPath())
		}
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	return f, nil
}

// AgentRunning reports whether a daemon holds agent.lock right now.
func (q Queue) AgentRunning() bool {
	f, err := os.Open(q.LockPath())
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}
