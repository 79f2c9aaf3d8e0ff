package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Protocol limits from docs/protocol.md. Clients outside the repository rely on them.
const (
	// MaxFrameBytes is the largest frame a client may send; bigger frames are closed with 1009.
	MaxFrameBytes = 2048
	// MaxTextRunes is the longest message text, in code points after trimming.
	MaxTextRunes = 280
	// MaxNameRunes is the longest display name, in code points after trimming.
	MaxNameRunes = 24
	// maxIDBytes bounds sid and cid so they cannot bloat the dedupe window.
	maxIDBytes = 64
	// ResetReplay is how many messages a client gets after welcome{resume:"reset"}.
	ResetReplay = 50
)

// CapMove is the capability a client offers in hello to have its connection
// moved at a drain rather than closed (docs/protocol.md v1.1).
const CapMove = "move"

// maxCaps bounds how many capabilities of a hello are looked at.
const maxCaps = 16

// Error codes of the protocol's error frame.
const (
	CodeRateLimited = "rate_limited"
	CodeTooLong     = "too_long"
	CodeBadRequest  = "bad_request"
	CodeDraining    = "draining"
)

var roomPattern = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// DefaultRoom is the room of a request without a room parameter.
const DefaultRoom = "lobby"

// ValidRoom reports whether name is an acceptable room name.
func ValidRoom(name string) bool { return roomPattern.MatchString(name) }

// Hello is the client's first frame.
type Hello struct {
	Name    string
	SID     string
	Epoch   string
	LastSeq uint64
	// Resume is true when the client named an epoch, i.e. it has seen this room before.
	Resume bool
	// Move is true when the client offered caps:["move"] (v1.1): a drain may
	// then move its connection to the next color instead of closing it.
	Move bool
}

// Held is a client's answer to hold: the last frame it sends before go.
type Held struct{}

// Send is a client's chat message before the room accepted it.
type Send struct {
	CID  string
	Text string
	X, Y float64
}

// FrameError is a client frame the server rejects with an error frame (the
// connection stays open). Code is one of the Code constants.
type FrameError struct {
	Code string
	CID  string
	Msg  string
}

func (e *FrameError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Msg) }

// ErrInvalidUTF8 means a text frame was not valid UTF-8; the connection is closed with 1007.
var ErrInvalidUTF8 = errors.New("frame is not valid UTF-8")

// inFrame is every field a client may send; unknown fields are ignored.
type inFrame struct {
	T       string   `json:"t"`
	Name    string   `json:"name"`
	SID     string   `json:"sid"`
	Epoch   *string  `json:"epoch"`
	LastSeq *uint64  `json:"last_seq"`
	CID     string   `json:"cid"`
	Text    *string  `json:"text"`
	X       *float64 `json:"x"`
	Y       *float64 `json:"y"`
	Caps    []string `json:"caps"`
}

// Decode parses and validates one client frame. It returns a *Hello or a *Send;
// a rejected frame is a *FrameError (answer with an error frame) or
// ErrInvalidUTF8 (close 1007).
func Decode(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, ErrInvalidUTF8
	}
	if len(data) > MaxFrameBytes {
		return nil, &FrameError{Code: CodeTooLong, Msg: "frame too large"}
	}
	var f inFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, &FrameError{Code: CodeBadRequest, Msg: "frame is not a JSON object"}
	}
	switch f.T {
	case "hello":
		return decodeHello(&f)
	case "send":
		return decodeSend(&f)
	case "held":
		return &Held{}, nil
	default:
		return nil, &FrameError{Code: CodeBadRequest, Msg: "unknown frame type"}
	}
}

func decodeHello(f *inFrame) (*Hello, error) {
	name := strings.TrimSpace(f.Name)
	if n := utf8.RuneCountInString(name); n < 1 || n > MaxNameRunes {
		return nil, &FrameError{Code: CodeBadRequest, Msg: "name must be 1..24 characters"}
	}
	if !validID(f.SID) {
		return nil, &FrameError{Code: CodeBadRequest, Msg: "sid must be 1..64 printable characters"}
	}
	h := &Hello{Name: name, SID: f.SID}
	for i, c := range f.Caps {
		if i >= maxCaps {
			break
		}
		if c == CapMove {
			h.Move = true
		}
	}
	if f.Epoch != nil && *f.Epoch != "" {
		if !validID(*f.Epoch) {
			return nil, &FrameError{Code: CodeBadRequest, Msg: "bad epoch"}
		}
		h.Epoch = *f.Epoch
		h.Resume = true
		if f.LastSeq != nil {
			h.LastSeq = *f.LastSeq
		}
	}
	return h, nil
}

func decodeSend(f *inFrame) (*Send, error) {
	if !validID(f.CID) {
		return nil, &FrameError{Code: CodeBadRequest, Msg: "cid must be 1..64 printable characters"}
	}
	if f.Text == nil {
		return nil, &FrameError{Code: CodeBadRequest, CID: f.CID, Msg: "text is required"}
	}
	text := strings.TrimSpace(*f.Text)
	n := utf8.RuneCountInString(text)
	if n < 1 {
		return nil, &FrameError{Code: CodeBadRequest, CID: f.CID, Msg: "text is empty"}
	}
	if n > MaxTextRunes {
		return nil, &FrameError{Code: CodeTooLong, CID: f.CID, Msg: "text longer than 280 characters"}
	}
	s := &Send{CID: f.CID, Text: text}
	for _, p := range []struct {
		in  *float64
		out *float64
	}{{f.X, &s.X}, {f.Y, &s.Y}} {
		if p.in == nil {
			continue
		}
		if !(*p.in >= 0 && *p.in <= 1) {
			return nil, &FrameError{Code: CodeBadRequest, CID: f.CID, Msg: "x and y must be within 0..1"}
		}
		*p.out = *p.in
	}
	return s, nil
}

// validID accepts 1..64 printable ASCII characters: ids are echoed in JSON and
// logs, and key the dedupe window.
func validID(s string) bool {
	if len(s) < 1 || len(s) > maxIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Message is an accepted chat message. SID is kept for dedupe and replication
// and never sent to clients.
type Message struct {
	Seq  uint64  `json:"seq"`
	SID  string  `json:"sid"`
	CID  string  `json:"cid"`
	From string  `json:"from"`
	Text string  `json:"text"`
	X    float64 `json:"x"`
	Y    float64 `json:"y"`
	TS   int64   `json:"ts"`
}

type msgFrame struct {
	T    string  `json:"t"`
	Seq  uint64  `json:"seq"`
	CID  string  `json:"cid"`
	From string  `json:"from"`
	Text string  `json:"text"`
	X    float64 `json:"x"`
	Y    float64 `json:"y"`
	TS   int64   `json:"ts"`
}

// frame returns m as the client's msg frame.
func (m *Message) frame() []byte {
	return mustJSON(msgFrame{T: "msg", Seq: m.Seq, CID: m.CID, From: m.From, Text: m.Text, X: m.X, Y: m.Y, TS: m.TS})
}

type welcomeFrame struct {
	T       string `json:"t"`
	Epoch   string `json:"epoch"`
	Seq     uint64 `json:"seq"`
	Resume  string `json:"resume"`
	Color   string `json:"color"`
	Version string `json:"version"`
	Online  int    `json:"online"`
}

// goFrame tells a moved client that this color now owns its connection.
type goFrame struct {
	T       string `json:"t"`
	Color   string `json:"color"`
	Version string `json:"version"`
}

// holdFrame asks a move-capable client to stop sending until go.
var holdFrame = []byte(`{"t":"hold"}`)

type seqFrame struct {
	T   string `json:"t"`
	Seq uint64 `json:"seq"`
}

type ackFrame struct {
	T   string `json:"t"`
	CID string `json:"cid"`
	Seq uint64 `json:"seq"`
}

type presenceFrame struct {
	T      string `json:"t"`
	Online int    `json:"online"`
}

type errorFrame struct {
	T       string `json:"t"`
	Code    string `json:"code"`
	CID     string `json:"cid,omitempty"`
	RetryMS int64  `json:"retry_ms,omitempty"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own fixed frame types are marshalled here, and all of them encode.
		panic(fmt.Sprintf("encode frame: %v", err))
	}
	return b
}

// Validate checks a message that came from outside this process (a replica's
// forwarded send or a replicated message) against the protocol's limits.
func (m *Message) Validate() error {
	switch {
	case !validID(m.SID) || !validID(m.CID):
		return fmt.Errorf("%w: bad sid or cid", ErrBadState)
	case m.From == "" || utf8.RuneCountInString(m.From) > MaxNameRunes || !utf8.ValidString(m.From):
		return fmt.Errorf("%w: bad sender name", ErrBadState)
	case m.Text == "" || utf8.RuneCountInString(m.Text) > MaxTextRunes || !utf8.ValidString(m.Text):
		return fmt.Errorf("%w: bad text", ErrBadState)
	case !(m.X >= 0 && m.X <= 1 && m.Y >= 0 && m.Y <= 1):
		return fmt.Errorf("%w: bad position", ErrBadState)
	}
	return nil
}
