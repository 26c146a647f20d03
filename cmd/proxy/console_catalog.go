package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/ui"
)

// catalog is the console's view of the repositories: the cache's store and
// access index, and the hosted repositories' store.
type catalog struct {
	cache         *storage.Store
	hosted        *storage.Store // nil without hosted repositories
	ix            *scheduler.Index
	isHosted      func(string) bool
	upstreamHosts map[string]bool // further upstreams: their repositories are stored under their host
	defaultSource string          // the default upstream's host
}

// newCatalog is the console's view of the cache's store and index and of
// the hosted repositories' store (nil without hosted repositories).
func newCatalog(cfg *config.Config, cached, hosted *storage.Store, ix *scheduler.Index) *catalog {
	cat := &catalog{cache: cached, hosted: hosted, ix: ix, isHosted: cfg.Hosted.IsHosted,
		upstreamHosts: map[string]bool{}, defaultSource: hostOf(cfg.Proxy.RemoteURL)}
	for _, u := range cfg.Upstreams {
		cat.upstreamHosts[u.Host] = true
	}
	return cat
}

// source is the upstream a cached repository is a cache of.
func (c *catalog) source(repo string) string {
	first, _, _ := strings.Cut(repo, "/")
	if c.upstreamHosts[first] {
		return first
	}
	return c.defaultSource
}

// Repositories lists the hosted repositories, then the cached ones, with
// their tag counts and last pulls.
func (c *catalog) Repositories(ctx context.Context) ([]ui.Repo, error) {
	var out []ui.Repo
	if c.hosted != nil {
		names, err := c.hosted.Repositories(ctx)
		if err != nil {
			return nil, fmt.Errorf("hosted repositories: %w", err)
		}
		for _, n := range names {
			tags, _ := c.hosted.Tags(ctx, n)
			out = append(out, ui.Repo{Name: n, Source: "hosted", Hosted: true, Tags: len(tags)})
		}
	}
	names, err := c.cache.Repositories(ctx)
	if err != nil {
		return nil, fmt.Errorf("cached repositories: %w", err)
	}
	for _, n := range names {
		tags, _ := c.cache.Tags(ctx, n)
		r := ui.Repo{Name: n, Source: c.source(n), Tags: len(tags)}
		for _, t := range tags {
			if e, ok := c.ix.Get(scheduler.Key{Kind: scheduler.KindTag, Repo: n, Tag: t}); ok && e.LastAccess.After(r.LastPull) {
				r.LastPull = e.LastAccess
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Repo describes a repository's tags from its stored manifests.
func (c *catalog) Repo(ctx context.Context, name string) (ui.RepoDetail, error) {
	st, hosted := c.cache, false
	if c.isHosted != nil && c.isHosted(name) {
		if c.hosted == nil {
			return ui.RepoDetail{}, ui.ErrNotFound
		}
		st, hosted = c.hosted, true
	}
	tags, err := st.Tags(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return ui.RepoDetail{}, ui.ErrNotFound
	}
	if err != nil {
		return ui.RepoDetail{}, fmt.Errorf("tags of %s: %w", name, err)
	}
	d := ui.RepoDetail{Repo: ui.Repo{Name: name, Hosted: hosted, Tags: len(tags), Source: "hosted"}}
	if !hosted {
		d.Source = c.source(name)
	}
	for _, t := range tags {
		tag := describeTag(ctx, st, name, t)
		if !hosted {
			if e, ok := c.ix.Get(scheduler.Key{Kind: scheduler.KindTag, Repo: name, Tag: t}); ok {
				tag.LastPull, tag.Expires = e.LastAccess, e.Expires
				if e.LastAccess.After(d.LastPull) {
					d.LastPull = e.LastAccess
				}
			}
		}
		d.TagList = append(d.TagList, tag)
	}
	return d, nil
}

// manifestJSON is what the console reads of a manifest or index.
type manifestJSON struct {
	Config    descriptorJSON   `json:"config"`
	Layers    []descriptorJSON `json:"layers"`
	Manifests []struct {
		descriptorJSON
		Platform *struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
			Variant      string `json:"variant"`
		} `json:"platform"`
	} `json:"manifests"`
}

type descriptorJSON struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
}

// describeTag resolves a tag and sizes what it points at: an image's
// manifest, config and layers; an index's platforms, each sized the same way
// when its manifest is stored here, else by its descriptor.
func describeTag(ctx context.Context, st *storage.Store, repo, tag string) ui.Tag {
	out := ui.Tag{Name: tag}
	d, err := st.ResolveTag(ctx, repo, tag)
	if err != nil {
		out.Error = "unreadable tag"
		return out
	}
	out.Digest = d.String()
	body, err := st.GetManifest(ctx, repo, d)
	if err != nil {
		out.Error = "manifest not stored"
		return out
	}
	out.MediaType = storage.ManifestMediaType(body)
	var m manifestJSON
	if err := json.Unmarshal(body, &m); err != nil {
		out.Error = "manifest not JSON"
		return out
	}
	out.Size = int64(len(body)) + m.Config.Size
	for _, l := range m.Layers {
		out.Size += l.Size
	}
	for _, child := range m.Manifests {
		if child.Platform != nil {
			p := child.Platform.OS + "/" + child.Platform.Architecture
			if child.Platform.Variant != "" {
				p += "/" + child.Platform.Variant
			}
			out.Platforms = append(out.Platforms, p)
		}
		size := child.Size
		if cb, err := st.GetManifest(ctx, repo, child.Digest); err == nil {
			var cm manifestJSON
			if json.Unmarshal(cb, &cm) == nil {
				size = int64(len(cb)) + cm.Config.Size
				for _, l := range cm.Layers {
					size += l.Size
				}
			}
		}
		out.Size += size
	}
	return out
}
