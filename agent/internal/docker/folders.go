package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"
)

// Folder is a host folder to give to a user.
type Folder struct {
	Path string      // an existing folder on the host
	Mode fs.FileMode // its permission bits
}

// neverStarted is the entrypoint of the container GiveFolders creates: it names nothing, since the
// container only ever holds the folders' bind mounts for the engine to extract onto.
const neverStarted = "/mywebchat-folders-never-started"

// GiveFolders makes each folder owned by uid:gid with its mode, through the engine rather than in
// this process. The agent keeps no capabilities (its unit's bounding set is empty, and its user
// namespace maps no user but root), so it cannot chown; the engine, which the agent drives anyway,
// can. GiveFolders creates a container named name from image (which must be on the host; the
// container is never started and runs nothing) with each folder bound at /f<i>, copies into it an
// archive holding one folder entry per bind whose header carries the owner and mode, and removes
// it: the engine extracts the entries onto the bound host folders, as for `docker cp`, and keeps
// their contents. A container left under name by an earlier run is replaced.
func (c *Client) GiveFolders(ctx context.Context, name, image string, uid, gid int, folders []Folder) error {
	if len(folders) == 0 {
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mounts := make([]mount.Mount, 0, len(folders))
	now := time.Now()
	for i, f := range folders {
		entry := "f" + strconv.Itoa(i)
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: f.Path, Target: "/" + entry})
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: entry + "/", Mode: int64(f.Mode.Perm()),
			Uid: uid, Gid: gid, ModTime: now, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("give folders: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("give folders: %w", err)
	}
	if err := c.RemoveContainer(ctx, name); err != nil {
		return err
	}
	r, err := c.api.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
		Config: &container.Config{Image: image, Entrypoint: []string{neverStarted}, Labels: map[string]string{"mywebchat.role": "folders"}},
		HostConfig: &container.HostConfig{NetworkMode: "none", CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"},
			Mounts: mounts, LogConfig: container.LogConfig{Type: "none"}},
	})
	if err != nil {
		return wrap("give folders: create container "+name, err)
	}
	defer func() {
		// Removed even when ctx ended: a left container would hold the folders' mounts. With
		// the anonymous volumes an image's VOLUME lines gave it, which would pile up otherwise.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = c.api.ContainerRemove(rctx, r.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}()
	// The daemon extracts a header's owner only without copyUIDGID (which would take the
	// container's user instead); noOverwriteDirNonDir keeps it from replacing a folder.
	_, err = c.api.CopyToContainer(ctx, r.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: &buf})
	if err != nil {
		return wrap(fmt.Sprintf("give folders to %d:%d", uid, gid), err)
	}
	return nil
}
