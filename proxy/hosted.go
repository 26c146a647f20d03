package proxy

import (
	"context"
	"net/http"
	"sort"

	"github.com/ocimirror/proxy/cache"
)

// Hosted serves the repositories users push to (hosted.Registry). The handler
// routes a request to it when its name lies in a hosted namespace, after
// authorizing it; it serves the request whole.
type Hosted interface {
	http.Handler
	Repositories(ctx context.Context) ([]string, error)
}

// sourceHosted marks hosted requests in the access log and metrics.
const sourceHosted cache.Source = "hosted"

// WithHosted serves names for which owns is true from reg instead of a cache.
func WithHosted(owns func(name string) bool, reg Hosted) Option {
	return func(h *Handler) { h.owns, h.hosted = owns, reg }
}

// isHosted reports whether name is served by the hosted registry. A request
// with containerd's ns= asks for that registry's content, through the mirror,
// so it never reaches hosted repositories (dispatch checks).
func (h *Handler) isHosted(name string) bool {
	return h.hosted != nil && name != "" && h.owns(name)
}

// serveHosted hands a request for a hosted repository to the hosted registry.
// Its handlers write their own headers and errcode bodies.
func (h *Handler) serveHosted(w http.ResponseWriter, r *http.Request, req *request) error {
	req.source = sourceHosted
	w.Header().Del("Docker-Distribution-API-Version") // distribution's handler adds it
	h.hosted.ServeHTTP(w, r)
	return nil
}

// allRepositories lists cached and hosted repositories in one sorted list.
func (h *Handler) allRepositories(ctx context.Context) ([]string, error) {
	p, err := h.cache.Catalog(ctx, 0, "")
	if err != nil {
		return nil, err
	}
	if h.hosted == nil {
		return p.Items, nil
	}
	hosted, err := h.hosted.Repositories(ctx)
	if err != nil {
		return nil, err
	}
	all := append(p.Items, hosted...)
	sort.Strings(all)
	return all, nil
}
