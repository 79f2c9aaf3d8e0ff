package redisroom

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
)

// ErrBadData means something read from Redis is malformed or out of bounds.
// Redis is shared infrastructure: its contents are checked like any input.
var ErrBadData = errors.New("bad room data in redis")

// Bounds on what is read back from Redis.
const (
	// maxFields is the most fields a log entry may carry (we write 8).
	maxFields = 16
	// maxValueBytes bounds one field: a 280-code-point text is at most 1120 bytes.
	maxValueBytes = 2048
)

// entry is one decoded log entry: the message and the epoch it was written under.
type entry struct {
	epoch string
	msg   chat.Message
}

// parseSeqID returns the seq encoded in a log entry ID ("<seq>-0").
func parseSeqID(id string) (uint64, error) {
	s, ok := strings.CutSuffix(id, "-0")
	if !ok {
		return 0, fmt.Errorf("%w: entry id %q", ErrBadData, truncate(id))
	}
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("%w: entry id %q", ErrBadData, truncate(id))
	}
	return seq, nil
}

// decodeEntry turns a log entry's ID and fields into a validated message.
func decodeEntry(id string, fields map[string]any) (entry, error) {
	seq, err := parseSeqID(id)
	if err != nil {
		return entry{}, err
	}
	if len(fields) > maxFields {
		return entry{}, fmt.Errorf("%w: entry %s has %d fields", ErrBadData, id, len(fields))
	}
	get := func(k string) (string, error) {
		v, ok := fields[k].(string)
		if !ok {
			return "", fmt.Errorf("%w: entry %s: field %s missing", ErrBadData, id, k)
		}
		if len(v) > maxValueBytes {
			return "", fmt.Errorf("%w: entry %s: field %s too long", ErrBadData, id, k)
		}
		return v, nil
	}
	var e entry
	var xs, ys, ts string
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"e", &e.epoch}, {"s", &e.msg.SID}, {"c", &e.msg.CID}, {"f", &e.msg.From},
		{"t", &e.msg.Text}, {"x", &xs}, {"y", &ys}, {"ts", &ts},
	} {
		v, err := get(f.key)
		if err != nil {
			return entry{}, err
		}
		*f.dst = v
	}
	e.msg.Seq = seq
	if e.msg.X, err = strconv.ParseFloat(xs, 64); err != nil {
		return entry{}, fmt.Errorf("%w: entry %s: x", ErrBadData, id)
	}
	if e.msg.Y, err = strconv.ParseFloat(ys, 64); err != nil {
		return entry{}, fmt.Errorf("%w: entry %s: y", ErrBadData, id)
	}
	if e.msg.TS, err = strconv.ParseInt(ts, 10, 64); err != nil {
		return entry{}, fmt.Errorf("%w: entry %s: ts", ErrBadData, id)
	}
	if err := e.msg.Validate(); err != nil {
		return entry{}, fmt.Errorf("%w: entry %s: %w", ErrBadData, id, err)
	}
	return e, nil
}

// decodeLuaEntry decodes an entry as a script returns it: {id, {k, v, ...}}.
func decodeLuaEntry(v any) (entry, error) {
	pair, ok := v.([]any)
	if !ok || len(pair) != 2 {
		return entry{}, fmt.Errorf("%w: log entry shape", ErrBadData)
	}
	id, ok := pair[0].(string)
	kv, ok2 := pair[1].([]any)
	if !ok || !ok2 || len(kv)%2 != 0 || len(kv) > 2*maxFields {
		return entry{}, fmt.Errorf("%w: log entry shape", ErrBadData)
	}
	fields := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return entry{}, fmt.Errorf("%w: log entry field name", ErrBadData)
		}
		fields[k] = kv[i+1]
	}
	return decodeEntry(id, fields)
}

// decodeSnapshot turns the open script's reply into a room state, checked
// against the bounds this instance was configured with.
func decodeSnapshot(v any, history, window int) (chat.RoomState, error) {
	var st chat.RoomState
	parts, ok := v.([]any)
	if !ok || len(parts) != 4 {
		return st, fmt.Errorf("%w: snapshot shape", ErrBadData)
	}
	epoch, ok := parts[0].(string)
	seq, ok2 := parts[1].(int64)
	hist, ok3 := parts[2].([]any)
	dd, ok4 := parts[3].([]any)
	if !ok || !ok2 || !ok3 || !ok4 || seq < 0 {
		return st, fmt.Errorf("%w: snapshot shape", ErrBadData)
	}
	if len(hist) > history || len(dd) > 2*window || len(dd)%2 != 0 {
		return st, fmt.Errorf("%w: snapshot larger than configured", ErrBadData)
	}
	st.Epoch, st.Seq = epoch, uint64(seq)
	st.History = make([]chat.Message, len(hist))
	// The script lists the newest first; RoomState wants the oldest first.
	for i, h := range hist {
		e, err := decodeLuaEntry(h)
		if err != nil {
			return st, err
		}
		if e.epoch != epoch {
			return st, fmt.Errorf("%w: entry %d of epoch %q in epoch %q", ErrBadData, e.msg.Seq, truncate(e.epoch), truncate(epoch))
		}
		st.History[len(hist)-1-i] = e.msg
	}
	st.Dedupe = make([]chat.DedupeEntry, 0, len(dd)/2)
	// Oldest first, like the hub's own window.
	for i := len(dd) - 2; i >= 0; i -= 2 {
		member, ok := dd[i].(string)
		score, ok2 := dd[i+1].(string)
		if !ok || !ok2 {
			return st, fmt.Errorf("%w: dedupe entry shape", ErrBadData)
		}
		sid, cid, ok := strings.Cut(member, " ")
		s, err := strconv.ParseUint(score, 10, 64)
		if !ok || err != nil || s == 0 || s > st.Seq {
			return st, fmt.Errorf("%w: dedupe entry %q", ErrBadData, truncate(member))
		}
		st.Dedupe = append(st.Dedupe, chat.DedupeEntry{SID: sid, CID: cid, Seq: s})
	}
	if err := st.Validate(); err != nil {
		return st, fmt.Errorf("%w: %w", ErrBadData, err)
	}
	return st, nil
}

// decodeAppend turns the append script's reply into (epoch, seq, duplicate).
func decodeAppend(v any) (epoch string, seq uint64, dup bool, err error) {
	parts, ok := v.([]any)
	if !ok || len(parts) != 3 {
		return "", 0, false, fmt.Errorf("%w: append reply shape", ErrBadData)
	}
	epoch, ok = parts[0].(string)
	s, ok2 := parts[1].(int64)
	d, ok3 := parts[2].(int64)
	if !ok || !ok2 || !ok3 || s <= 0 || len(epoch) == 0 || len(epoch) > 64 {
		return "", 0, false, fmt.Errorf("%w: append reply", ErrBadData)
	}
	return epoch, uint64(s), d == 1, nil
}

// truncate keeps error messages short when data is garbage.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
