package deploy

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mywebchat/mywebchat/agent/internal/config"
)

// handoverTarget is where the handover folder appears inside every color's container.
const handoverTarget = "/handover"

// handoverDir creates <state_dir>/handover/<app> (0700) and gives it to the image's numeric user,
// so that both colors, which run as that user, can pass rooms through it and nobody else can read
// them. It returns the folder's path on the host.
func handoverDir(stateDir, app, user string, log *slog.Logger) (string, error) {
	dir := filepath.Join(stateDir, "handover", app)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("handover folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("handover folder: %w", err)
	}
	if uid, gid, ok := numericUser(user); ok {
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", fmt.Errorf("handover folder: %w", err)
		}
	} else if user != "" {
		log.Warn("image user is not numeric; handover folder stays root-owned", "user", user)
	}
	return dir, nil
}

// socketsTarget is where the socket folder (the data path from nginx) appears inside every
// color's container; the color serves on socketsTarget/<color>.sock.
const socketsTarget = "/sockets"

// socketDir creates the socket folder, when the data path uses one: traversable but not
// listable by others (0711, so nginx workers of any user reach the sockets by name), writable
// only by the image's numeric user, which creates the sockets. A derived folder's parent
// (<state_dir>/sockets, which the nginx container mounts) is created 0711 as well.
func socketDir(cfg *config.Config, user string, log *slog.Logger) error {
	dir := cfg.EffectiveSocketDir()
	if dir == "" {
		return nil
	}
	if cfg.App.SocketDir == "" {
		if err := mkdirMode(filepath.Dir(dir), 0o711); err != nil {
			return fmt.Errorf("socket folder: %w", err)
		}
	}
	if err := mkdirMode(dir, 0o711); err != nil {
		return fmt.Errorf("socket folder: %w", err)
	}
	if uid, gid, ok := numericUser(user); ok {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fmt.Errorf("socket folder: %w", err)
		}
	} else if user != "" {
		log.Warn("image user is not numeric; socket folder stays root-owned", "user", user)
	}
	return nil
}

func mkdirMode(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, mode); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// numericUser parses an image's USER as uid[:gid]; a name is not numeric (it would have to be
// looked up inside the image).
func numericUser(user string) (int, int, bool) {
	if user == "" {
		return 0, 0, false
	}
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return 0, 0, false
	}
	gid := uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0, false
		}
	}
	return uid, gid, true
}
