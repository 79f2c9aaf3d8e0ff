package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/mywebchat/mywebchat/agent/internal/docker"
	"github.com/mywebchat/mywebchat/agent/internal/state"
)

// imageRemover drops an image reference; pruning also inspects images and lists containers.
type imageRemover interface {
	RemoveImage(ctx context.Context, ref string) error
}

// Prune removes images of releases this agent deployed beyond keep_releases, newest kept first.
// Only images named in the journal are candidates (other images of the repository on the host,
// e.g. built by hand, are never touched), and never one that a container of this app uses or that
// state.json names. It returns the removed image IDs.
func (d *Deployer) Prune(ctx context.Context, st state.State) ([]string, error) {
	recs, err := d.Store.History(0)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{}
	for _, r := range []*state.Release{st.Active, st.Previous} {
		if r != nil {
			keep[r.ImageID] = true
			keep[r.Digest] = true
		}
	}
	cs, err := d.Engine.ListContainers(ctx, map[string]string{LabelApp: d.Cfg.App.Name})
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		keep[c.ImageID] = true
	}
	var candidates []string
	seen := map[string]bool{}
	for _, r := range recs { // newest first
		if r.Result != state.Succeeded || r.ImageID == "" || seen[r.ImageID] {
			continue
		}
		seen[r.ImageID] = true
		candidates = append(candidates, r.ImageID)
	}
	var removed []string
	var errs []error
	for i, id := range candidates {
		if i < d.Cfg.App.KeepReleases || keep[id] {
			continue
		}
		img, err := d.Engine.InspectImage(ctx, id)
		if errors.Is(err, docker.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if keep[img.ID] {
			continue
		}
		// Remove only this repository's references: an image also tagged for something else
		// (e.g. by hand) loses our tags but stays.
		refs := d.ownRefs(img)
		if len(refs) == 0 && len(img.RepoTags)+len(img.RepoDigests) == 0 {
			refs = []string{img.ID} // dangling, and known from the journal: ours
		}
		ok := len(refs) > 0
		for _, ref := range refs {
			if err := d.Engine.RemoveImage(ctx, ref); err != nil && !errors.Is(err, docker.ErrNotFound) {
				errs = append(errs, err)
				ok = false
			}
		}
		if ok {
			removed = append(removed, img.ID)
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("prune: %w", errors.Join(errs...))
	}
	return removed, nil
}

// ownRefs returns img's tags and digests that belong to app.repository.
func (d *Deployer) ownRefs(img docker.Image) []string {
	var refs []string
	for _, r := range append(append([]string{}, img.RepoTags...), img.RepoDigests...) {
		if inRepository(r, d.Cfg.App.Repository) {
			refs = append(refs, r)
		}
	}
	return refs
}
