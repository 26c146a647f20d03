package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocimirror/proxy/upstream"
)

// maxListBody bounds a tag list or referrers answer read from the upstream.
const maxListBody = 16 << 20

// Page is one page of a lexically ordered list; More says whether a next page
// starts after the last item.
type Page struct {
	Items  []string
	More   bool
	Source Source
}

// Tags lists the tags of name: the upstream's list, or the cached tags when the
// upstream is unavailable.
func (c *Cache) Tags(ctx context.Context, name string, n int, last string) (Page, error) {
	repo := c.repository(name)
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	if last != "" {
		q.Set("last", last)
	}
	resp, err := c.up.Get(ctx, repo.up, "tags/list", q, nil)
	if upstream.IsUnavailable(err) {
		tags, lerr := c.store.Tags(ctx, repo.local)
		if lerr != nil {
			return Page{}, err
		}
		c.log.WithError(err).WithField("repo", repo.local).Warn("upstream unavailable, listing cached tags")
		p := Paginate(tags, n, last)
		p.Source = Stale
		return p, nil
	}
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&list); err != nil {
		return Page{}, fmt.Errorf("tags of %s: decode upstream answer: %w", repo.local, err)
	}
	return Page{Items: list.Tags, More: resp.Header.Get("Link") != "", Source: Miss}, nil
}

// Catalog lists the cached repositories.
func (c *Cache) Catalog(ctx context.Context, n int, last string) (Page, error) {
	repos, err := c.store.Repositories(ctx)
	if err != nil {
		return Page{}, err
	}
	p := Paginate(repos, n, last)
	p.Source = Hit
	return p, nil
}

// Paginate returns up to n items after last from a sorted list (n <= 0: all).
func Paginate(items []string, n int, last string) Page {
	start := 0
	if last != "" {
		start = sort.SearchStrings(items, last)
		if start < len(items) && items[start] == last {
			start++
		}
	}
	items = items[start:]
	if n > 0 && len(items) > n {
		return Page{Items: items[:n], More: true}
	}
	return Page{Items: items}
}

// Referrers is an OCI image index of the manifests that refer to a digest.
type Referrers struct {
	Body           []byte
	FiltersApplied string // the OCI-Filters-Applied value, "" when no filter
}

// Referrers passes the referrers list of name@dgst through from the upstream,
// applying the artifactType filter itself when the upstream did not.
func (c *Cache) Referrers(ctx context.Context, name string, dgst digest.Digest, artifactType string) (*Referrers, error) {
	repo := c.repository(name)
	q := url.Values{}
	if artifactType != "" {
		q.Set("artifactType", artifactType)
	}
	h := http.Header{"Accept": {v1.MediaTypeImageIndex}}
	resp, err := c.up.Get(ctx, repo.up, "referrers/"+dgst.String(), q, h)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxListBody+1))
	if err != nil {
		return nil, fmt.Errorf("referrers of %s@%s: %w", repo.local, dgst, err)
	}
	if len(body) > maxListBody {
		return nil, fmt.Errorf("referrers of %s@%s: answer over %d bytes", repo.local, dgst, maxListBody)
	}
	r := &Referrers{Body: body}
	if artifactType == "" {
		return r, nil
	}
	r.FiltersApplied = "artifactType"
	if resp.Header.Get("OCI-Filters-Applied") != "" {
		return r, nil
	}
	r.Body, err = filterReferrers(body, artifactType)
	return r, err
}

func filterReferrers(body []byte, artifactType string) ([]byte, error) {
	var idx v1.Index
	if err := json.Unmarshal(body, &idx); err != nil {
		return nil, errors.New("referrers: upstream answer is not an image index")
	}
	kept := make([]v1.Descriptor, 0, len(idx.Manifests))
	for _, d := range idx.Manifests {
		if d.ArtifactType == artifactType {
			kept = append(kept, d)
		}
	}
	idx.Manifests = kept
	return json.Marshal(idx)
}
