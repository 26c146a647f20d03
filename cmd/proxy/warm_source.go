package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/scheduler"
)

// localSource warms the storage root itself through the caches serve would
// build: the same fills, verification, index records and layout.
type localSource struct {
	ix     *scheduler.Index
	def    *cache.Cache
	byHost map[string]*cache.Cache
}

// openLocalSource opens the root as serve does: the index first (its lock is
// the root's; scheduler.ErrInUse when a proxy runs on it), then the store,
// reconciled, and the caches.
func openLocalSource(ctx context.Context, cfg *config.Config, log *logrus.Entry) (*localSource, error) {
	ix, err := openIndex(cfg, log)
	if err != nil {
		return nil, err
	}
	s := &localSource{ix: ix}
	store, err := openStore(ctx, cfg)
	if err == nil {
		err = reconcile(ctx, ix, store, cfg, cfg.Storage.Delete.Enabled, log)
	}
	if err == nil {
		s.def, s.byHost, err = newCaches(cfg, store, ix, nil, log)
	}
	if err != nil {
		_ = ix.Close()
		return nil, err
	}
	return s, nil
}

// close ends the caches (every Fetch has waited for its commit) and writes
// and closes the index.
func (s *localSource) close() error {
	for _, c := range distinct(s.byHost) {
		if c != s.def {
			c.Close()
		}
	}
	s.def.Close()
	if err := s.ix.Close(); err != nil {
		return fmt.Errorf("close index: %w", err)
	}
	return nil
}

// route picks the cache of a repository name by serve's rule (proxy.pick): a
// first component that names a registry host (a dot, a port, or localhost)
// selects that upstream, anything else is the default upstream's.
func (s *localSource) route(name string) (*cache.Cache, string, error) {
	first, rest, found := strings.Cut(name, "/")
	if !found || !config.IsRegistryHost(first) {
		return s.def, name, nil
	}
	c, ok := s.byHost[first]
	if !ok {
		return nil, "", fmt.Errorf("no upstream is configured for registry %s (add it under upstreams:)", first)
	}
	return c, rest, nil
}

func (s *localSource) check(name string) error {
	_, _, err := s.route(name)
	return err
}

func (s *localSource) knowsUpstream() bool { return true }

func (s *localSource) manifest(ctx context.Context, name, ref string) ([]byte, digest.Digest, bool, error) {
	c, repo, err := s.route(name)
	if err != nil {
		return nil, "", false, err
	}
	m, err := c.Manifest(ctx, repo, ref, warmAccept)
	if err != nil {
		return nil, "", false, err // the upstream client's errors name the manifest
	}
	return m.Body, m.Digest, m.Source == cache.Miss, nil
}

func (s *localSource) blob(ctx context.Context, name string, d v1.Descriptor) (bool, error) {
	c, repo, err := s.route(name)
	if err != nil {
		return false, err
	}
	_, src, err := c.Fetch(ctx, repo, d.Digest)
	return src == cache.Miss, err
}

// serverSource pulls through a running proxy's registry API: every manifest
// and blob is read in full and verified, which makes the proxy fill its cache.
type serverSource struct {
	base   string // scheme://host[:port][/path], no trailing slash
	client *http.Client
}

// maxWarmManifest bounds a manifest read from the server.
const maxWarmManifest = 16 << 20

func newServerSource(raw string) (*serverSource, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want the proxy's URL, http://host:port or https://host", raw)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 2 * time.Minute // a miss answers once the upstream does
	return &serverSource{base: strings.TrimRight(u.String(), "/"), client: &http.Client{Transport: tr}}, nil
}

func (s *serverSource) check(string) error  { return nil } // the server routes
func (s *serverSource) knowsUpstream() bool { return false }

// get GETs /v2/<name>/<endpoint>; an answer other than 200 is an error.
func (s *serverSource) get(ctx context.Context, name, endpoint string, accept []string) (*http.Response, error) {
	path := "/v2/" + name + "/" + endpoint
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if len(accept) > 0 {
		req.Header.Set("Accept", strings.Join(accept, ", "))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %w", path, responseError(resp))
	}
	return resp, nil
}

// responseError describes a failed answer by its status and errcode body.
func responseError(resp *http.Response) error {
	var body struct {
		Errors []struct{ Code, Message string }
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	msg := resp.Status
	if len(body.Errors) > 0 {
		msg += ": " + body.Errors[0].Code + ": " + body.Errors[0].Message
	}
	if resp.StatusCode == http.StatusUnauthorized {
		msg += " (proxy warm --server sends no credentials)"
	}
	return errors.New(msg)
}

func (s *serverSource) manifest(ctx context.Context, name, ref string) ([]byte, digest.Digest, bool, error) {
	resp, err := s.get(ctx, name, "manifests/"+ref, warmAccept)
	if err != nil {
		return nil, "", false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxWarmManifest+1))
	if err != nil {
		return nil, "", false, fmt.Errorf("manifest %s: read: %w", ref, err)
	}
	if len(body) > maxWarmManifest {
		return nil, "", false, fmt.Errorf("manifest %s: over %d bytes", ref, maxWarmManifest)
	}
	want, err := digest.Parse(ref)
	if err != nil { // a tag: the server's digest header, if any, must match
		want, err = digest.Parse(resp.Header.Get("Docker-Content-Digest"))
	}
	if err != nil {
		return body, digest.FromBytes(body), false, nil
	}
	if got := want.Algorithm().FromBytes(body); got != want {
		return nil, "", false, fmt.Errorf("manifest %s: body hashes to %s, not %s", ref, got, want)
	}
	return body, want, false, nil
}

func (s *serverSource) blob(ctx context.Context, name string, d v1.Descriptor) (bool, error) {
	if err := d.Digest.Validate(); err != nil {
		return false, err
	}
	resp, err := s.get(ctx, name, "blobs/"+d.Digest.String(), nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	v := d.Digest.Verifier()
	n, err := io.Copy(v, resp.Body)
	switch {
	case err != nil:
		return false, fmt.Errorf("read after %d bytes: %w", n, err)
	case n != d.Size:
		return false, fmt.Errorf("%d bytes, the manifest says %d", n, d.Size)
	case !v.Verified():
		return false, errors.New("body does not hash to its digest")
	}
	return false, nil
}
