package handover

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/mywebchat/mywebchat/chatserver/internal/chat"
)

// Limits of the socket protocol: everything read from the socket is bounded.
const (
	// maxLine bounds one JSON line; the largest is a room snapshot (history
	// plus dedupe window).
	maxLine = 16 << 20
	// wireVersion is checked in the hello, so mismatched builds fail loudly
	// instead of misreading each other (then the standby starts a new epoch
	// once the predecessor is gone).
	wireVersion = 1
)

// Ops of the socket protocol, one JSON object per line.
//
// primary → standby: hello, room (snapshot), synced, msg, reply, ping, promote.
// standby → primary: hello, open, send, ping, promoted.
const (
	opHello    = "hello"
	opRoom     = "room"
	opSynced   = "synced"
	opMsg      = "msg"
	opReply    = "reply"
	opPing     = "ping"
	opPromote  = "promote"
	opOpen     = "open"
	opSend     = "send"
	opPromoted = "promoted"
)

// Reply error codes.
const (
	errDraining = "draining"
	errFailed   = "failed"
)

// line is every field of every op.
type line struct {
	Op      string          `json:"op"`
	Version int             `json:"version,omitempty"`
	ID      uint64          `json:"id,omitempty"`
	Room    string          `json:"room,omitempty"`
	State   *chat.RoomState `json:"state,omitempty"`
	Msg     *chat.Message   `json:"msg,omitempty"`
	Seq     uint64          `json:"seq,omitempty"`
	Err     string          `json:"err,omitempty"`
}

func encode(l line) []byte {
	b, err := json.Marshal(l)
	if err != nil {
		// line holds only plain data that always encodes.
		panic(fmt.Sprintf("encode handover line: %v", err))
	}
	return append(b, '\n')
}

// reader reads bounded JSON lines.
type reader struct{ s *bufio.Scanner }

func newReader(r io.Reader) *reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &reader{s: s}
}

func (r *reader) next() (line, error) {
	if !r.s.Scan() {
		if err := r.s.Err(); err != nil {
			return line{}, fmt.Errorf("read handover socket: %w", err)
		}
		return line{}, io.EOF
	}
	var l line
	if err := json.Unmarshal(r.s.Bytes(), &l); err != nil {
		return line{}, fmt.Errorf("decode handover line: %w", err)
	}
	return l, nil
}
