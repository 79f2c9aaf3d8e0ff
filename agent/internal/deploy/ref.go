package deploy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// ErrBadInput marks a request that cannot be deployed as given; nothing was changed (exit 2).
var ErrBadInput = errors.New("bad input")

// imageRef is a validated image reference inside app.repository.
type imageRef struct {
	raw    string
	name   string // normalized repository name
	domain string // registry host, for credentials
	tag    string
	digest string
}

// parseRef checks that raw names an image in repository by tag or digest.
func parseRef(raw, repository string) (imageRef, error) {
	if raw == "" {
		return imageRef{}, fmt.Errorf("%w: no image given", ErrBadInput)
	}
	if len(raw) > 512 || strings.ContainsAny(raw, " \t\n\r") {
		return imageRef{}, fmt.Errorf("%w: %q is not an image reference", ErrBadInput, raw)
	}
	named, err := reference.ParseNormalizedNamed(raw)
	if err != nil {
		return imageRef{}, fmt.Errorf("%w: %q is not an image reference: %w", ErrBadInput, raw, err)
	}
	repo, err := reference.ParseNormalizedNamed(repository)
	if err != nil {
		return imageRef{}, fmt.Errorf("%w: app.repository %q: %w", ErrBadInput, repository, err)
	}
	if named.Name() != repo.Name() {
		return imageRef{}, fmt.Errorf("%w: %s is not in the repository %s", ErrBadInput, raw, repository)
	}
	r := imageRef{raw: raw, name: named.Name(), domain: reference.Domain(named)}
	if t, ok := named.(reference.Tagged); ok {
		r.tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.digest = d.Digest().String()
	}
	if r.tag == "" && r.digest == "" {
		return imageRef{}, fmt.Errorf("%w: %s needs a tag or a digest (%s:TAG or %s@sha256:…)", ErrBadInput, raw, repository, repository)
	}
	return r, nil
}

// version is APP_VERSION: the tag, or the short digest when there is none.
func (r imageRef) version(digest string) string {
	if r.tag != "" {
		return r.tag
	}
	return shortDigest(digest)
}

func shortDigest(d string) string {
	d = strings.TrimPrefix(d, "sha256:")
	if len(d) > 12 {
		d = d[:12]
	}
	return d
}

// tagsInRepository reports whether one of repoTags (repo:tag) is in r's repository.
func (r imageRef) tagsInRepository(repoTags []string) bool {
	for _, t := range repoTags {
		if n, err := reference.ParseNormalizedNamed(t); err == nil && n.Name() == r.name {
			return true
		}
	}
	return false
}

// resolve picks what to run: repo@sha256 from RepoDigests when the image came from a registry,
// otherwise the image ID (local images have no registry digest).
func (r imageRef) resolve(imageID string, repoDigests []string) (runRef, digest string) {
	for _, rd := range repoDigests {
		n, err := reference.ParseNormalizedNamed(rd)
		if err != nil || n.Name() != r.name {
			continue
		}
		if d, ok := n.(reference.Digested); ok {
			return rd, d.Digest().String()
		}
	}
	return imageID, imageID
}

// ValidateImage checks that ref names an image in repository by tag or digest; the error wraps
// ErrBadInput.
func ValidateImage(ref, repository string) error {
	_, err := parseRef(ref, repository)
	return err
}

// inRepository reports whether ref (name:tag or name@digest) names an image of repository.
func inRepository(ref, repository string) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	repo, err := reference.ParseNormalizedNamed(repository)
	return err == nil && named.Name() == repo.Name()
}
