package proxy

import (
	"net/http"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
)

// WithUpstreams adds caches of further upstreams by the registry host clients
// name them with ("ghcr.io", "localhost:5001"). Requests reach them by
// containerd's ns= query parameter or by the host as the first path component
// (mirror/ghcr.io/owner/app); everything else goes to the default upstream.
func WithUpstreams(byHost map[string]*cache.Cache) Option {
	return func(h *Handler) {
		for host, c := range byHost {
			h.hosts[strings.ToLower(host)] = c
		}
	}
}

// pick returns the cache that serves the repository name, and the name within
// that upstream. A host no upstream is configured for is refused: the mirror
// is never an open proxy.
func (h *Handler) pick(r *http.Request, name string) (*cache.Cache, string, error) {
	if ns := r.URL.Query().Get("ns"); ns != "" {
		c, ok := h.hosts[strings.ToLower(ns)]
		if !ok {
			return nil, "", noUpstream(ns)
		}
		return c, name, nil
	}
	first, rest, found := strings.Cut(name, "/")
	if found && config.IsRegistryHost(first) {
		c, ok := h.hosts[strings.ToLower(first)]
		if !ok {
			return nil, "", noUpstream(first)
		}
		return c, rest, nil
	}
	return h.cache, name, nil
}

func noUpstream(host string) error {
	return withStatus(http.StatusNotFound, errcode.ErrorCodeNameUnknown,
		"no upstream is configured for registry "+host+"; this mirror is not an open proxy")
}
