package cache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/upstream"
)

// Manifest is a verified manifest ready to serve.
type Manifest struct {
	Body      []byte
	MediaType string
	Digest    digest.Digest
	Source    Source

	unstored bool // fetched and verified, but the store failed to keep it
}

// Manifest returns the manifest ref (a tag or a digest) of the repository name as
// the client named it. accept is the client's Accept list, passed upstream.
func (c *Cache) Manifest(ctx context.Context, name, ref string, accept []string) (*Manifest, error) {
	repo := c.repository(name)
	if dgst, err := digest.Parse(ref); err == nil {
		return c.manifestByDigest(ctx, repo, dgst, accept)
	}
	return c.manifestByTag(ctx, repo, ref, accept)
}

func (c *Cache) manifestByDigest(ctx context.Context, repo repository, dgst digest.Digest, accept []string) (*Manifest, error) {
	if m, err := c.localManifest(ctx, repo, dgst, Hit); err == nil {
		return m, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	return shared(ctx, c, "digest "+repo.local+"@"+dgst.String(), func(ctx context.Context) (*Manifest, error) {
		return c.fetchDigest(ctx, repo, dgst, accept)
	})
}

func (c *Cache) manifestByTag(ctx context.Context, repo repository, tag string, accept []string) (*Manifest, error) {
	local, err := c.store.ResolveTag(ctx, repo.local, tag)
	if errors.Is(err, storage.ErrNotFound) {
		return c.fetchTag(ctx, repo, tag, accept)
	} else if err != nil {
		return nil, err
	}
	c.touch(scheduler.KindTag, repo.local, local, tag)
	key := repo.local + ":" + tag + " " + strings.Join(accept, ",")
	if c.isFresh(key) {
		if m, err := c.localManifest(ctx, repo, local, Hit); err == nil {
			return m, nil
		}
	}
	desc, err := shared(ctx, c, "head "+key, func(ctx context.Context) (upstream.Descriptor, error) {
		return c.headTag(ctx, repo, tag, accept)
	})
	switch {
	case upstream.IsUnavailable(err):
		c.log.WithError(err).WithField("repo", repo.local).WithField("tag", tag).
			Warn("upstream unavailable, serving cached manifest")
		return c.localManifest(ctx, repo, local, Stale)
	case err != nil:
		return nil, err
	case desc.Digest == "":
		return c.fetchTag(ctx, repo, tag, accept)
	}
	if c.tagFreshness > 0 {
		c.fresh.Store(key, time.Now())
	}
	if m, err := c.localManifest(ctx, repo, desc.Digest, Hit); err == nil {
		if desc.Digest != local {
			c.keepTag(ctx, repo, tag, m)
		}
		return m, nil
	}
	m, err := shared(ctx, c, "digest "+repo.local+"@"+desc.Digest.String(), func(ctx context.Context) (*Manifest, error) {
		return c.fetchDigest(ctx, repo, desc.Digest, accept)
	})
	if err != nil {
		return nil, err
	}
	c.keepTag(ctx, repo, tag, m)
	return m, nil
}

func (c *Cache) isFresh(key string) bool {
	if c.tagFreshness <= 0 {
		return false
	}
	t, ok := c.fresh.Load(key)
	return ok && time.Since(t.(time.Time)) < c.tagFreshness
}

// fetchTag fetches a tag the cache does not hold (or whose digest the upstream did
// not say), verifies it against the digest header if any, stores and tags it,
// once for the cluster (fetchTagOnce).
func (c *Cache) fetchTag(ctx context.Context, repo repository, tag string, accept []string) (*Manifest, error) {
	return shared(ctx, c, "tag "+repo.local+":"+tag+" "+strings.Join(accept, ","), func(ctx context.Context) (*Manifest, error) {
		return c.fetchTagOnce(ctx, repo, tag, accept)
	})
}

// fetchAndTag GETs tag of repo upstream, stores the manifest and points the
// tag at it.
func (c *Cache) fetchAndTag(ctx context.Context, repo repository, tag string, accept []string) (*Manifest, error) {
	m, err := c.fetchManifest(ctx, repo, tag, "", accept)
	if err != nil {
		return nil, err
	}
	c.keepTag(ctx, repo, tag, m)
	return m, nil
}

// fetchManifest GETs ref upstream and stores it. want is the digest the body must
// hash to: the one the client asked for, else the upstream's Docker-Content-Digest.
func (c *Cache) fetchManifest(ctx context.Context, repo repository, ref string, want digest.Digest, accept []string) (*Manifest, error) {
	body, desc, err := c.up.GetManifest(ctx, repo.up, ref, accept)
	if err != nil {
		return nil, err
	}
	if want == "" {
		want = desc.Digest
	}
	got := digest.FromBytes(body)
	if want != "" {
		if err := want.Validate(); err != nil {
			return nil, fmt.Errorf("manifest %s@%s: upstream digest header %q: %w", repo.local, ref, want, ErrDigestMismatch)
		}
		got = want.Algorithm().FromBytes(body)
	}
	if want != "" && got != want {
		c.log.WithField("repo", repo.local).WithField("ref", ref).WithField("want", want).WithField("got", got).
			Error("upstream manifest does not match its digest; not stored")
		return nil, fmt.Errorf("manifest %s@%s: %w", repo.local, ref, ErrDigestMismatch)
	}
	// The media type comes from the body, as for a hit, so HEAD and GET, hit and
	// miss, always agree.
	m := &Manifest{Body: body, MediaType: storage.ManifestMediaType(body), Digest: got, Source: Miss}
	if err := c.store.PutManifest(ctx, repo.local, got, body); err != nil {
		// The body is verified: the client gets it; the next pull fetches again.
		c.log.WithError(err).WithField("repo", repo.local).WithField("digest", got).
			Warn("manifest verified but not stored; serving the upstream's answer")
		m.unstored = true
		return m, nil
	}
	c.record(scheduler.KindManifest, repo.local, got, "", int64(len(body)))
	return m, nil
}

func (c *Cache) localManifest(ctx context.Context, repo repository, dgst digest.Digest, src Source) (*Manifest, error) {
	body, err := c.store.GetManifest(ctx, repo.local, dgst)
	if err != nil {
		return nil, err
	}
	c.touch(scheduler.KindManifest, repo.local, dgst, "")
	return &Manifest{Body: body, MediaType: storage.ManifestMediaType(body), Digest: dgst, Source: src}, nil
}
