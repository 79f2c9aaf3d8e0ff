package move

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type received struct {
	conn net.Conn
	sess Session
}

// TestPassConnection: a connection accepted by one process carries on in
// another after Send, the old descriptor closed, nothing lost either way.
func TestPassConnection(t *testing.T) {
	dir := t.TempDir()
	got := make(chan received, 1)
	l, err := Listen(dir, Peer{ID: "green1", Color: "green", Version: "v2"}, func(c net.Conn, s Session) { got <- received{c, s} }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	// The old process's accepted end and the user's side.
	old, user := pair(t)
	defer user.Close()
	if _, err := user.Write([]byte("before")); err != nil {
		t.Fatal(err)
	}

	s, err := Dial(dir, "blue1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Peer.Color != "green" || s.Peer.ID != "green1" {
		t.Fatalf("peer = %+v, want green1", s.Peer)
	}
	want := Session{Room: "lobby", SID: "s1", Name: "mina", Epoch: "e1", LastSeq: 41, Pending: []byte("xy")}
	if err := s.Send(old, want); err != nil {
		t.Fatal(err)
	}
	old.Close() // the old process exits: the connection lives on in the receiver
	var r received
	select {
	case r = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no connection received")
	}
	defer r.conn.Close()
	if r.sess.Room != want.Room || r.sess.LastSeq != 41 || string(r.sess.Pending) != "xy" || r.sess.Epoch != "e1" {
		t.Fatalf("session = %+v, want %+v", r.sess, want)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(r.conn, buf); err != nil || string(buf) != "before" {
		t.Fatalf("receiver read %q %v, want the bytes the old process left unread", buf, err)
	}
	if _, err := r.conn.Write([]byte("from green")); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, 10)
	if _, err := io.ReadFull(user, buf); err != nil || string(buf) != "from green" {
		t.Fatalf("user read %q %v", buf, err)
	}
}

// TestDialSkipsSelfAndStale: a process never moves to itself, and a socket
// file nobody listens on any more is removed.
func TestDialSkipsSelfAndStale(t *testing.T) {
	dir := t.TempDir()
	self, err := Listen(dir, Peer{ID: "me"}, func(c net.Conn, _ Session) { c.Close() }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	stalePath := filepath.Join(dir, "move-dead.sock")
	stale, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: stalePath, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := Dial(dir, "me"); !errors.Is(err, ErrNoSuccessor) {
		t.Fatalf("Dial = %v, want ErrNoSuccessor", err)
	}
	if _, err := os.Lstat(stalePath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale socket file still there: %v", err)
	}
	if _, err := os.Lstat(self.Path()); err != nil {
		t.Fatalf("own socket file: %v", err)
	}
}

// TestMalformedMessages: a message without a descriptor or with a bad
// session is dropped, and the receiver keeps taking the next ones.
func TestMalformedMessages(t *testing.T) {
	dir := t.TempDir()
	got := make(chan received, 1)
	l, err := Listen(dir, Peer{ID: "r"}, func(c net.Conn, s Session) { got <- received{c, s} }, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := Dial(dir, "me")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.conn.Write([]byte(`{"room":"lobby"}`)); err != nil { // no descriptor
		t.Fatal(err)
	}
	a, b := pair(t)
	defer b.Close()
	if err := s.Send(a, Session{Room: "ok"}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		r.conn.Close()
		if r.sess.Room != "ok" {
			t.Fatalf("got session %+v, want the well-formed one", r.sess)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the well-formed message after a malformed one was not received")
	}
}

func pair(t *testing.T) (*net.UnixConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return a.(*net.UnixConn), b
}
