package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/mywebchat/mywebchat/agent/internal/config"
	"github.com/mywebchat/mywebchat/agent/internal/docker"
)

// handoverTarget is where the handover folder appears inside every color's container.
const handoverTarget = "/handover"

// socketsTarget is where the socket folder (the data path from nginx) appears inside every
// color's container; the color serves on socketsTarget/<color>.sock.
const socketsTarget = "/sockets"

// folderGiver gives host folders to a user through the engine (docker.Client.GiveFolders): the
// agent itself holds no capability to chown.
type folderGiver interface {
	GiveFolders(ctx context.Context, name, image string, uid, gid int, folders []docker.Folder) error
}

// prepareFolders creates the folders every color of img binds and gives them to the image's
// numeric user, and returns the handover folder's path on the host:
//   - <state_dir>/handover/<app> (0700): both colors, which run as that user, pass rooms through
//     it and nobody else can read them;
//   - the socket folder, when the data path uses one (0711: traversable but not listable, so
//     nginx workers of any user reach the sockets by name; writable only by the image's user,
//     which creates the sockets). A derived folder's parent (<state_dir>/sockets, which the
//     nginx container mounts) is created 0711 and stays root's.
//
// A folder already owned and moded as wanted is left alone; the others are given through the
// engine. An image without a numeric user (a name would have to be looked up inside the image)
// gets them as root's.
func (d *Deployer) prepareFolders(ctx context.Context, cfg *config.Config, img docker.Image) (string, error) {
	handover := filepath.Join(cfg.StateDir, "handover", cfg.App.Name)
	if err := os.MkdirAll(handover, 0o700); err != nil {
		return "", fmt.Errorf("handover folder: %w", err)
	}
	folders := []docker.Folder{{Path: handover, Mode: 0o700}}
	if dir := cfg.EffectiveSocketDir(); dir != "" {
		if cfg.App.SocketDir == "" {
			if err := mkdirMode(filepath.Dir(dir), 0o711); err != nil {
				return "", fmt.Errorf("socket folder: %w", err)
			}
		}
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return "", fmt.Errorf("socket folder: %w", err)
		}
		folders = append(folders, docker.Folder{Path: dir, Mode: 0o711})
	}
	uid, gid, ok := numericUser(img.User)
	if !ok {
		if img.User != "" {
			d.log().Warn("image user is not numeric; handover and socket folders stay root's", "user", img.User)
		}
		uid, gid = 0, 0
	}
	var give []docker.Folder
	for _, f := range folders {
		if !ownedAs(f, uid, gid) {
			give = append(give, f)
		}
	}
	if len(give) == 0 {
		return handover, nil
	}
	if err := d.Engine.GiveFolders(ctx, cfg.App.Name+"-folders", img.ID, uid, gid, give); err != nil {
		return "", fmt.Errorf("handover and socket folders: %w", err)
	}
	return handover, nil
}

// ownedAs reports whether f is a folder owned by uid:gid with f.Mode. In the agent's user
// namespace (its unit's PrivateUsers=) any owner but root shows as the overflow user, so there a
// folder given to the image's user is given again on each deploy: the engine's answer is the same.
func ownedAs(f docker.Folder, uid, gid int) bool {
	fi, err := os.Stat(f.Path)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != f.Mode.Perm() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid && int(st.Gid) == gid
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
