// Package proxy is the HTTP front end of the mirror: it parses registry API requests,
// asks the cache, and writes responses and errcode bodies. It holds no cache logic.
package proxy

import (
	"net/http"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/metrics"
)

// Handler serves the pull side of the OCI distribution API from a cache.
type Handler struct {
	cache   *cache.Cache            // the default upstream
	hosts   map[string]*cache.Cache // further upstreams by registry host
	log     *logrus.Entry
	headers http.Header
	access  bool
	metrics *metrics.Metrics
	owns    func(name string) bool // names in hosted namespaces
	hosted  Hosted
	auth    *auth.Authorizer
	private map[*cache.Cache]bool // upstreams only authenticated users may pull from
	pulls   *metrics.TopRepos     // pulls by repository, for the console; nil: not counted
	peers   *cluster.PeerSigner   // verifies other replicas' requests for fills; nil: not served
}

// Option configures a Handler.
type Option func(*Handler)

// WithLogger sets the logger for the per-request access log.
func WithLogger(l *logrus.Entry) Option { return func(h *Handler) { h.log = l } }

// WithHeaders adds fixed headers to every response (config http.headers).
func WithHeaders(hdr http.Header) Option { return func(h *Handler) { h.headers = hdr } }

// WithAccessLog turns the one-line-per-request log on or off (default on).
func WithAccessLog(on bool) Option { return func(h *Handler) { h.access = on } }

// WithMetrics counts requests, results and bytes in m.
func WithMetrics(m *metrics.Metrics) Option { return func(h *Handler) { h.metrics = m } }

// WithTopRepos counts every pull (a GET of a manifest answered 200, as Docker
// Hub counts pulls) by repository in t, under the name the catalog lists it
// by.
func WithTopRepos(t *metrics.TopRepos) Option { return func(h *Handler) { h.pulls = t } }

// New returns a handler serving c.
func New(c *cache.Cache, opts ...Option) *Handler {
	h := &Handler{cache: c, hosts: map[string]*cache.Cache{}, log: logrus.NewEntry(logrus.StandardLogger()),
		access: true, private: map[*cache.Cache]bool{}}
	for _, o := range opts {
		o(h)
	}
	if h.auth == nil {
		h.auth, _ = auth.New(config.Auth{}, auth.WithLogger(h.log)) // cannot fail without auth configured
	}
	return h
}

// request is what a handler knows of one request beyond net/http's view, and what
// it reports back to the access log.
type request struct {
	route
	cache  *cache.Cache // the upstream's cache
	repo   string       // the repository name within that upstream
	source cache.Source
	user   string // the authenticated client, "" when anonymous
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, req *request) error

// ServeHTTP routes a request and writes an errcode body for any error.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lw := newLogWriter(w)
	req := &request{}
	defer h.finish(lw, r, req)
	for k, v := range h.headers {
		lw.Header()[k] = v
	}
	lw.Header().Set("Docker-Distribution-API-Version", "registry/2.0")

	if h.isPeerRoute(r) {
		h.fail(lw, r, req, h.peerFill(lw, r, req))
		return
	}
	rt, err := parseRoute(r.URL.Path)
	if err != nil {
		req.kind = kindInvalid
		lw.err = err
		writeError(lw, r, rt.kind, err)
		return
	}
	req.route = rt
	h.fail(lw, r, req, h.dispatch(lw, r, req))
}

// fail answers err, if any: an errcode body, or a cut connection when the
// body was under way (so that it cannot look complete).
func (h *Handler) fail(lw *logWriter, r *http.Request, req *request, err error) {
	if err == nil {
		return
	}
	lw.err = err
	if lw.status != 0 {
		panic(http.ErrAbortHandler)
	}
	writeError(lw, r, req.kind, err)
}

// dispatch picks the endpoint's handler and the upstream, and runs it.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request, req *request) error {
	if h.isHosted(req.name) && !r.URL.Query().Has("ns") {
		r, err := h.authorize(r, req)
		if err != nil {
			return err
		}
		return h.serveHosted(w, r, req)
	}
	fn, err := h.endpoint(r.Method, req.kind)
	if err != nil {
		return err
	}
	if req.name != "" {
		if req.cache, req.repo, err = h.pick(r, req.name); err != nil {
			return err
		}
	}
	if r, err = h.authorize(r, req); err != nil {
		return err
	}
	return fn(w, r, req)
}

// endpoint picks the handler of a kind. The cache is read-only: writes get 405.
func (h *Handler) endpoint(method string, k kind) (handlerFunc, error) {
	if method != http.MethodGet && method != http.MethodHead {
		return nil, errUnsupported
	}
	switch k {
	case kindBase:
		return h.base, nil
	case kindCatalog:
		return h.catalog, nil
	case kindManifest:
		return h.manifest, nil
	case kindBlob:
		return h.blob, nil
	case kindTags:
		return h.tags, nil
	case kindReferrers:
		return h.referrers, nil
	}
	return nil, errUnsupported
}

func (h *Handler) base(w http.ResponseWriter, r *http.Request, _ *request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write([]byte("{}"))
	}
	return nil
}
