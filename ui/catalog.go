package ui

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Catalog is what the console reads about repositories: cmd/proxy implements
// it from the cache's store and access index and the hosted repositories, so
// the console needs none of their internals.
type Catalog interface {
	// Repositories lists every hosted and cached repository.
	Repositories(ctx context.Context) ([]Repo, error)
	// Repo describes one repository and its tags; ErrNotFound if there is
	// no such repository.
	Repo(ctx context.Context, name string) (RepoDetail, error)
}

// ErrNotFound is a repository the catalog does not have.
var ErrNotFound = errors.New("no such repository")

// Repo is one repository in the list.
type Repo struct {
	Name string
	// Source is "hosted" for a hosted repository, else the upstream host it
	// is a cache of (e.g. registry-1.docker.io).
	Source   string
	Hosted   bool
	Tags     int
	LastPull time.Time // the latest pull of any of its tags; zero if unknown (hosted)
}

// RepoDetail is a repository with its tags.
type RepoDetail struct {
	Repo
	TagList []Tag
}

// Tag is one tag and what it points at.
type Tag struct {
	Name      string
	Digest    string
	MediaType string
	// Size is the manifest with its config and layers; for an index, with
	// every platform's manifest, config and layers that are stored here.
	Size      int64
	Platforms []string // for an index: os/arch[/variant] of each manifest
	LastPull  time.Time
	Expires   time.Time // zero: never (hosted, pinned or no TTL)
	Error     string    // what could not be read, in words
}

// repositories is the list page: every repository, filtered by a search of
// its name (case-insensitive substring) and by source.
func (c *Console) repositories(w http.ResponseWriter, r *http.Request, s session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	source := r.URL.Query().Get("source")
	all, err := c.opts.Catalog.Repositories(r.Context())
	if err != nil {
		c.log.WithError(err).Error("console: listing repositories")
		c.errorPage(w, r, http.StatusInternalServerError, "The repositories could not be listed; see the server log.")
		return
	}
	sources := map[string]bool{}
	var shown []Repo
	for _, repo := range all {
		sources[repo.Source] = true
		if q != "" && !strings.Contains(strings.ToLower(repo.Name), strings.ToLower(q)) {
			continue
		}
		if source != "" && repo.Source != source {
			continue
		}
		shown = append(shown, repo)
	}
	var srcs []string
	for s := range sources {
		srcs = append(srcs, s)
	}
	sort.Strings(srcs)
	c.render(w, http.StatusOK, "repositories", struct {
		page
		Q, Source string
		Sources   []string
		Repos     []Repo
		Total     int
	}{c.base(s, "Repositories", "repositories"), q, source, srcs, shown, len(all)})
}

// repository is one repository's page: its tags with digests, sizes,
// platforms, last pull and expiry.
func (c *Console) repository(w http.ResponseWriter, r *http.Request, s session) {
	name := r.URL.Query().Get("name")
	d, err := c.opts.Catalog.Repo(r.Context(), name)
	switch {
	case errors.Is(err, ErrNotFound):
		c.errorPage(w, r, http.StatusNotFound, "There is no repository of that name here.")
		return
	case err != nil:
		c.log.WithError(err).WithField("repo", name).Error("console: reading a repository")
		c.errorPage(w, r, http.StatusInternalServerError, "The repository could not be read; see the server log.")
		return
	}
	c.render(w, http.StatusOK, "repository", struct {
		page
		Repo       RepoDetail
		CanMirror  bool
		MirrorPath string
	}{c.base(s, d.Name, "repositories"), d, d.Hosted && c.opts.API != nil && mirrorable(d.Name), d.Name})
}

// mirrorable reports a hosted name the mirroring API can address: exactly
// namespace/reponame, as DTR's.
func mirrorable(name string) bool {
	ns, repo, ok := strings.Cut(name, "/")
	return ok && ns != "" && repo != "" && !strings.Contains(repo, "/")
}
