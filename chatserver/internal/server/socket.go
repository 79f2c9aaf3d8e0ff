package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
)

// socketMode lets the front proxy's workers connect whatever user they run
// as: the socket is as reachable as a port on the loopback was, and its
// folder is what guards it (the deploy agent makes it traversable, not
// listable, and mounts it only into the colors and nginx).
const socketMode = 0o666

// listenUnix serves on a unix socket at path. A socket file left by an
// earlier run of this color (a crash, a kill) is replaced; any other kind of
// file is an error, so a wrong path never deletes data.
func listenUnix(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen %s: a file that is not a socket is in the way", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, socketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	return ln, nil
}
