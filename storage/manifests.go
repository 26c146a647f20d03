package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Docker media types that OCI's image-spec does not define.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// PutManifest stores a verified manifest body as the blob dgst and links it as a
// revision of repo.
func (s *Store) PutManifest(ctx context.Context, repo string, dgst digest.Digest, body []byte) error {
	if _, err := s.StatBlob(ctx, dgst); err != nil {
		if err := s.putAtomic(ctx, blobDataPath(dgst), body); err != nil {
			return fmt.Errorf("store manifest %s: %w", dgst, err)
		}
	}
	if err := s.d.PutContent(ctx, revisionLinkPath(repo, dgst), []byte(dgst.String())); err != nil {
		return fmt.Errorf("link manifest %s in %s: %w", dgst, repo, err)
	}
	return nil
}

// GetManifest returns the manifest dgst of repo, if repo holds it.
func (s *Store) GetManifest(ctx context.Context, repo string, dgst digest.Digest) ([]byte, error) {
	if _, err := s.d.Stat(ctx, revisionLinkPath(repo, dgst)); err != nil {
		return nil, mapErr(err)
	}
	body, err := s.d.GetContent(ctx, blobDataPath(dgst))
	if err != nil {
		return nil, mapErr(err)
	}
	// Manifests are small, so every read is checked: a damaged or empty object
	// is no manifest, and the caller fetches it again.
	if got := dgst.Algorithm().FromBytes(body); got != dgst {
		return nil, fmt.Errorf("manifest %s: stored content hashes to %s: %w", dgst, got, ErrNotFound)
	}
	return body, nil
}

// Tag points repo:tag at the manifest dgst.
func (s *Store) Tag(ctx context.Context, repo, tag string, dgst digest.Digest) error {
	link := []byte(dgst.String())
	if err := s.d.PutContent(ctx, tagIndexPath(repo, tag, dgst), link); err != nil {
		return fmt.Errorf("tag %s:%s: %w", repo, tag, err)
	}
	if err := s.putAtomic(ctx, tagCurrentPath(repo, tag), link); err != nil {
		return fmt.Errorf("tag %s:%s: %w", repo, tag, err)
	}
	return nil
}

// ResolveTag returns the digest repo:tag points at.
func (s *Store) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	b, err := s.d.GetContent(ctx, tagCurrentPath(repo, tag))
	if err != nil {
		return "", mapErr(err)
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("tag %s:%s: corrupt link: %w", repo, tag, err)
	}
	return d, nil
}

// Tags lists the tags of repo in lexical order.
func (s *Store) Tags(ctx context.Context, repo string) ([]string, error) {
	entries, err := s.d.List(ctx, tagsPath(repo))
	if err != nil {
		return nil, mapErr(err)
	}
	tags := make([]string, 0, len(entries))
	for _, e := range entries {
		tags = append(tags, path.Base(e))
	}
	sort.Strings(tags)
	return tags, nil
}

// Repositories lists, in lexical order, every repository that holds a manifest.
func (s *Store) Repositories(ctx context.Context) ([]string, error) {
	return s.repositories(ctx, "_manifests")
}

// linkedRepositories lists, in lexical order, every repository that holds a
// manifest or a layer link: a blob pulled by digest alone, with no manifest
// through this cache, is linked in a repository that has only _layers.
func (s *Store) linkedRepositories(ctx context.Context) ([]string, error) {
	return s.repositories(ctx, "_manifests", "_layers")
}

// repositories lists the directories with one of marks, sorted.
func (s *Store) repositories(ctx context.Context, marks ...string) ([]string, error) {
	var repos []string
	err := s.walkRepos(ctx, reposRoot, 0, marks, &repos)
	if err == ErrNotFound {
		return nil, nil
	}
	sort.Strings(repos)
	return repos, err
}

// walkRepos descends the repository tree; a directory with one of marks
// (_manifests, _layers) is a repository, other _-prefixed directories are
// skipped. Depth is bounded by the reference grammar's name length.
func (s *Store) walkRepos(ctx context.Context, dir string, depth int, marks []string, out *[]string) error {
	if depth > 128 {
		return nil
	}
	entries, err := s.d.List(ctx, dir)
	if err != nil {
		return mapErr(err)
	}
	found := false
	for _, e := range entries {
		base := path.Base(e)
		if slices.Contains(marks, base) {
			if !found {
				*out = append(*out, strings.TrimPrefix(dir, reposRoot+"/"))
				found = true
			}
			continue
		}
		if strings.HasPrefix(base, "_") {
			continue
		}
		if err := s.walkRepos(ctx, e, depth+1, marks, out); err != nil && err != ErrNotFound {
			return err
		}
	}
	return nil
}

// ManifestMediaType returns the media type of a manifest body: its mediaType field,
// else what its shape says (an index has manifests, an image manifest has layers).
func ManifestMediaType(body []byte) string {
	var m struct {
		SchemaVersion int               `json:"schemaVersion"`
		MediaType     string            `json:"mediaType"`
		Manifests     []json.RawMessage `json:"manifests"`
		Layers        []json.RawMessage `json:"layers"`
		Signatures    []json.RawMessage `json:"signatures"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return ""
	}
	switch {
	case m.MediaType != "":
		return m.MediaType
	case m.SchemaVersion == 1 && m.Signatures != nil:
		return MediaTypeDockerSchema1
	case m.SchemaVersion == 1:
		return "application/vnd.docker.distribution.manifest.v1+json"
	case m.Manifests != nil:
		return v1.MediaTypeImageIndex
	default:
		return v1.MediaTypeImageManifest
	}
}

// Manifests lists the digests of the manifests linked in repo (its revisions),
// in lexical order.
func (s *Store) Manifests(ctx context.Context, repo string) ([]digest.Digest, error) {
	dir := path.Join(repoPath(repo), "_manifests", "revisions")
	algs, err := s.d.List(ctx, dir)
	if err != nil {
		return nil, mapErr(err)
	}
	var out []digest.Digest
	for _, alg := range algs {
		hexes, err := s.d.List(ctx, alg)
		if err != nil {
			continue
		}
		for _, h := range hexes {
			d := digest.NewDigestFromEncoded(digest.Algorithm(path.Base(alg)), path.Base(h))
			if d.Validate() != nil {
				continue
			}
			if _, err := s.d.Stat(ctx, path.Join(h, "link")); err != nil {
				continue // deleted: distribution removes the link
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
