// Package peercred reads who is at the other end of a unix socket (the
// kernel's SO_PEERCRED), so the chat server's local sockets (handover, move)
// can refuse processes of another user even if the folder's mode let them in.
package peercred

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// UID is the user id of the process that connected conn, as the kernel saw it
// at connect time (it cannot be forged by the peer).
func UID(conn *net.UnixConn) (uint32, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return 0, fmt.Errorf("peer credentials: %w", credErr)
	}
	return cred.Uid, nil
}
