package peercred

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Both ends of a socket pair in this process see this process's user.
func TestUIDIsOurOwn(t *testing.T) {
	client, server, err := pair(t)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	defer server.Close()
	for name, c := range map[string]*net.UnixConn{"server": server, "client": client} {
		uid, err := UID(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := uint32(os.Geteuid()); uid != want {
			t.Errorf("%s end: peer uid %d, want %d", name, uid, want)
		}
	}
}

// A closed connection has no peer to ask about: an error, not uid 0 (which
// the callers would admit as root).
func TestUIDOfClosedConnFails(t *testing.T) {
	a, b, err := pair(t)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	a.Close()
	if uid, err := UID(a); err == nil {
		t.Fatalf("UID of a closed connection = %d, want an error", uid)
	}
}

func pair(t *testing.T) (*net.UnixConn, *net.UnixConn, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	s, err := ln.AcceptUnix()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, s, nil
}

// dialEnv names the abstract socket a re-executed test binary dials before
// exiting (see TestMain).
const dialEnv = "PEERCRED_TEST_DIAL"

func TestMain(m *testing.M) {
	if addr := os.Getenv(dialEnv); addr != "" {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: addr, Net: "unix"})
		if err != nil {
			os.Exit(2)
		}
		// Wait for the test to close its end, so it reads the credentials of
		// a live peer.
		_, _ = c.Read(make([]byte, 1))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// A process of another user is seen as that user: what lets the callers
// refuse it. Switching user needs root; as any other user our own uid is
// already not 0, so TestUIDIsOurOwn tells a real answer from a zero one.
func TestUIDOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching the child's user needs root; TestUIDIsOurOwn covers a non-root run")
	}
	const nobody = 65534
	// An abstract socket has no file whose mode could keep the other user out.
	addr := fmt.Sprintf("@peercred-test-%d", os.Getpid())
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(copyForAnyone(t, os.Args[0]), "-test.run=^$")
	cmd.Env = append(os.Environ(), dialEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := ln.AcceptUnix()
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	uid, uidErr := UID(conn)
	conn.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if uidErr != nil {
		t.Fatal(uidErr)
	}
	if uid != nobody {
		t.Fatalf("peer uid %d, want %d", uid, nobody)
	}
}

// copyForAnyone copies the test binary where another user may run it (go test
// builds it in a folder only we can enter).
func copyForAnyone(t *testing.T, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "peercred-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "peercred.test")
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
