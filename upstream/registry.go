package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/opencontainers/go-digest"
)

// defaultManifestAccept is sent when the caller passes no Accept list: every
// manifest and index type a pull-through cache serves.
func defaultManifestAccept() []string {
	return []string{
		"application/vnd.oci.image.index.v1+json",
		"application/vnd.oci.image.manifest.v1+json",
		"application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.docker.distribution.manifest.v2+json",
	}
}

// Descriptor is what the upstream said about a manifest or blob; nothing in
// it is verified.
type Descriptor struct {
	MediaType string        // Content-Type without parameters
	Digest    digest.Digest // Docker-Content-Digest; "" when absent or malformed
	Size      int64         // Content-Length (GetManifest: bytes read); -1 when unknown
}

// HeadManifest asks for a manifest's descriptor without its body; by tag this
// is how a cache learns what digest a tag points to now.
func (c *Client) HeadManifest(ctx context.Context, repo, ref string, accept []string) (Descriptor, error) {
	what := "head manifest " + refString(repo, ref)
	if err := validateRepoRef(repo, ref); err != nil {
		return Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.do(ctx, c.manifestRequest(http.MethodHead, repo, ref, accept))
	if err != nil {
		return Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Descriptor{}, fmt.Errorf("%s: %w", what, newError(resp))
	}
	return c.describe(resp), nil
}

// GetManifest fetches a whole manifest. Bodies over the maximum manifest size
// fail with ErrManifestTooLarge, judged on Content-Length before reading and
// on the bytes read (never more than max+1 are buffered). Descriptor.Digest is
// the upstream's Docker-Content-Digest, which the caller must verify.
func (c *Client) GetManifest(ctx context.Context, repo, ref string, accept []string) ([]byte, Descriptor, error) {
	what := "get manifest " + refString(repo, ref)
	if err := validateRepoRef(repo, ref); err != nil {
		return nil, Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.do(ctx, c.manifestRequest(http.MethodGet, repo, ref, accept))
	if err != nil {
		return nil, Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, Descriptor{}, fmt.Errorf("%s: %w", what, newError(resp))
	}
	limit := c.opts.maxManifestSize
	if resp.ContentLength > limit {
		return nil, Descriptor{}, fmt.Errorf("%s: %w: Content-Length %d exceeds %d", what, ErrManifestTooLarge, resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, Descriptor{}, fmt.Errorf("%s: read body: %w", what, err)
	}
	if int64(len(body)) > limit {
		return nil, Descriptor{}, fmt.Errorf("%s: %w: body exceeds %d bytes", what, ErrManifestTooLarge, limit)
	}
	d := c.describe(resp)
	d.Size = int64(len(body))
	return body, d, nil
}

// HeadBlob asks for a blob's descriptor without its body.
func (c *Client) HeadBlob(ctx context.Context, repo string, dgst digest.Digest) (Descriptor, error) {
	what := "head blob " + repo + "@" + dgst.String()
	if err := validateRepoDigest(repo, dgst); err != nil {
		return Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.do(ctx, c.blobRequest(http.MethodHead, repo, dgst))
	if err != nil {
		return Descriptor{}, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Descriptor{}, fmt.Errorf("%s: %w", what, newError(resp))
	}
	return c.describe(resp), nil
}

// GetBlob streams a blob byte for byte: it asks for identity encoding and
// never decompresses. The body fails with ErrStalled when no byte arrives
// within the stall timeout and fails when ctx ends; the caller closes it and
// verifies the digest. size is the Content-Length, or -1 when unknown.
func (c *Client) GetBlob(ctx context.Context, repo string, dgst digest.Digest) (body io.ReadCloser, size int64, err error) {
	what := "get blob " + repo + "@" + dgst.String()
	if err := validateRepoDigest(repo, dgst); err != nil {
		return nil, -1, fmt.Errorf("%s: %w", what, err)
	}
	resp, err := c.do(ctx, c.blobRequest(http.MethodGet, repo, dgst))
	if err != nil {
		return nil, -1, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, -1, fmt.Errorf("%s: %w", what, newError(resp))
	}
	return resp.Body, resp.ContentLength, nil
}

// Get performs an authenticated GET of /v2/<repo>/<path>?<query>, to pass
// through endpoints such as tags/list and referrers. header is added to the
// request, except Authorization, which the client manages. Non-2xx answers
// become *Error with the body consumed; otherwise the caller closes
// resp.Body, which has the same stall protection as GetBlob's.
func (c *Client) Get(ctx context.Context, repo, path string, query url.Values, header http.Header) (*http.Response, error) {
	what := "get " + repo + "/" + path
	if err := validateRepo(repo); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := validateSubpath(path); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	u := c.v2URL(repo + "/" + path)
	u.RawQuery = query.Encode()
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Del("Authorization")
	resp, err := c.do(ctx, request{method: http.MethodGet, url: u, header: h, repo: repo})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s: %w", what, newError(resp))
	}
	return resp, nil
}

// Ping does GET /v2/ to check the upstream answers and to learn its
// authentication challenge, so later requests can authenticate up front. It
// returns nil when the upstream answered 200 or 401.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.sendWithRetry(ctx, request{method: http.MethodGet, url: c.v2URL("")}, "")
	c.recordOutcome(ctx, err)
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized:
		c.observe(resp.Header)
		return nil
	}
	return fmt.Errorf("ping: %w", newError(resp))
}

func (c *Client) v2URL(path string) *url.URL {
	return &url.URL{Scheme: c.base.Scheme, Host: c.base.Host, Path: "/v2/" + path}
}

func (c *Client) manifestRequest(method, repo, ref string, accept []string) request {
	if len(accept) == 0 {
		accept = defaultManifestAccept()
	}
	return request{
		method: method,
		url:    c.v2URL(repo + "/manifests/" + ref),
		header: http.Header{"Accept": {strings.Join(accept, ", ")}},
		repo:   repo,
	}
}

func (c *Client) blobRequest(method, repo string, dgst digest.Digest) request {
	return request{
		method: method,
		url:    c.v2URL(repo + "/blobs/" + dgst.String()),
		header: http.Header{"Accept-Encoding": {"identity"}},
		repo:   repo,
	}
}

// describe reads a Descriptor from response headers.
func (c *Client) describe(resp *http.Response) Descriptor {
	mt, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	d := Descriptor{MediaType: strings.TrimSpace(mt), Size: resp.ContentLength}
	if v := resp.Header.Get("Docker-Content-Digest"); v != "" {
		if dg, err := digest.Parse(v); err == nil {
			d.Digest = dg
		} else {
			c.log.WithField("digest", v).Debug("ignoring malformed Docker-Content-Digest")
		}
	}
	return d
}

// refString renders repo and ref as repo:tag or repo@digest.
func refString(repo, ref string) string {
	if strings.Contains(ref, ":") {
		return repo + "@" + ref
	}
	return repo + ":" + ref
}
