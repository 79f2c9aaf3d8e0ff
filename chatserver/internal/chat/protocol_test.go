package chat

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDecode(t *testing.T) {
	long := strings.Repeat("é", MaxTextRunes)
	tests := []struct {
		name     string
		in       string
		want     any
		wantCode string
		wantUTF8 bool
	}{
		{"hello", `{"t":"hello","name":" mina ","sid":"s1"}`, &Hello{Name: "mina", SID: "s1"}, "", false},
		{"hello resume", `{"t":"hello","name":"mina","sid":"s1","epoch":"e7","last_seq":41}`, &Hello{Name: "mina", SID: "s1", Epoch: "e7", LastSeq: 41, Resume: true}, "", false},
		{"hello with move", `{"t":"hello","name":"a","sid":"s","caps":["x","move"]}`, &Hello{Name: "a", SID: "s", Move: true}, "", false},
		{"hello with other caps", `{"t":"hello","name":"a","sid":"s","caps":["zip"]}`, &Hello{Name: "a", SID: "s"}, "", false},
		{"held", `{"t":"held"}`, &Held{}, "", false},
		{"hello unknown field", `{"t":"hello","name":"a","sid":"s","zzz":1}`, &Hello{Name: "a", SID: "s"}, "", false},
		{"hello empty name", `{"t":"hello","name":"   ","sid":"s1"}`, nil, CodeBadRequest, false},
		{"hello long name", `{"t":"hello","name":"` + strings.Repeat("n", 25) + `","sid":"s1"}`, nil, CodeBadRequest, false},
		{"hello 24 runes", `{"t":"hello","name":"` + strings.Repeat("ß", 24) + `","sid":"s1"}`, &Hello{Name: strings.Repeat("ß", 24), SID: "s1"}, "", false},
		{"hello no sid", `{"t":"hello","name":"a"}`, nil, CodeBadRequest, false},
		{"hello sid with space", `{"t":"hello","name":"a","sid":"a b"}`, nil, CodeBadRequest, false},
		{"send", `{"t":"send","cid":"c1","text":" hi ","x":0.5,"y":1}`, &Send{CID: "c1", Text: "hi", X: 0.5, Y: 1}, "", false},
		{"send 280 runes", `{"t":"send","cid":"c1","text":"` + long + `"}`, &Send{CID: "c1", Text: long}, "", false},
		{"send 281 runes", `{"t":"send","cid":"c1","text":"` + long + `x"}`, nil, CodeTooLong, false},
		{"send blank", `{"t":"send","cid":"c1","text":" \n "}`, nil, CodeBadRequest, false},
		{"send no text", `{"t":"send","cid":"c1"}`, nil, CodeBadRequest, false},
		{"send no cid", `{"t":"send","text":"x"}`, nil, CodeBadRequest, false},
		{"send x out of range", `{"t":"send","cid":"c","text":"x","x":1.5}`, nil, CodeBadRequest, false},
		{"send y negative", `{"t":"send","cid":"c","text":"x","y":-0.1}`, nil, CodeBadRequest, false},
		{"unknown type", `{"t":"dance"}`, nil, CodeBadRequest, false},
		{"not json", `hello`, nil, CodeBadRequest, false},
		{"array", `[1,2]`, nil, CodeBadRequest, false},
		{"invalid utf8", "{\"t\":\"send\",\"cid\":\"c\",\"text\":\"\xff\"}", nil, "", true},
		{"wrong types", `{"t":"send","cid":5,"text":"x"}`, nil, CodeBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.in))
			if tt.wantUTF8 {
				if !errors.Is(err, ErrInvalidUTF8) {
					t.Fatalf("got err %v, want ErrInvalidUTF8", err)
				}
				return
			}
			if tt.wantCode != "" {
				fe, ok := errors.AsType[*FrameError](err)
				if !ok || fe.Code != tt.wantCode {
					t.Fatalf("got %v, %v; want FrameError %s", got, err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("got err %v", err)
			}
			switch w := tt.want.(type) {
			case *Hello:
				if g, ok := got.(*Hello); !ok || *g != *w {
					t.Fatalf("got %#v, want %#v", got, w)
				}
			case *Send:
				if g, ok := got.(*Send); !ok || *g != *w {
					t.Fatalf("got %#v, want %#v", got, w)
				}
			}
		})
	}
}

func TestValidRoom(t *testing.T) {
	for _, tt := range []struct {
		room string
		want bool
	}{
		{"lobby", true}, {"a-1", true}, {strings.Repeat("a", 32), true},
		{"", false}, {strings.Repeat("a", 33), false}, {"Lobby", false}, {"a b", false}, {"a/b", false}, {"ä", false},
	} {
		if got := ValidRoom(tt.room); got != tt.want {
			t.Errorf("ValidRoom(%q) = %v, want %v", tt.room, got, tt.want)
		}
	}
}

// FuzzDecode checks that no frame crashes the decoder and that every accepted
// frame satisfies the protocol's limits.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"t":"hello","name":"mina","sid":"s","epoch":"e","last_seq":3}`,
		`{"t":"send","cid":"c","text":"hi","x":0.1,"y":0.9}`,
		`{"t":"send","cid":"c","text":"` + strings.Repeat("界", 281) + `"}`,
		"{\"t\":\"send\",\"text\":\"\xc3\"}", `{}`, `null`, `{"t":"hello","name":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		if !utf8.Valid(data) {
			if !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("invalid UTF-8 accepted: %v %v", got, err)
			}
			return
		}
		if err != nil {
			if _, ok := errors.AsType[*FrameError](err); !ok {
				t.Fatalf("unexpected error type %T", err)
			}
			return
		}
		switch v := got.(type) {
		case *Hello:
			if n := utf8.RuneCountInString(v.Name); n < 1 || n > MaxNameRunes || strings.TrimSpace(v.Name) != v.Name {
				t.Fatalf("bad name accepted: %q", v.Name)
			}
			if !validID(v.SID) {
				t.Fatalf("bad sid accepted: %q", v.SID)
			}
		case *Send:
			if n := utf8.RuneCountInString(v.Text); n < 1 || n > MaxTextRunes || strings.TrimSpace(v.Text) != v.Text {
				t.Fatalf("bad text accepted: %q", v.Text)
			}
			if !(v.X >= 0 && v.X <= 1 && v.Y >= 0 && v.Y <= 1) || !validID(v.CID) {
				t.Fatalf("bad send accepted: %#v", v)
			}
			m := Message{SID: "s", CID: v.CID, From: "n", Text: v.Text, X: v.X, Y: v.Y}
			if err := m.Validate(); err != nil {
				t.Fatalf("accepted send fails Message.Validate: %v", err)
			}
		default:
			t.Fatalf("Decode returned %T", got)
		}
	})
}
