package proxy

import (
	"net/http"

	"github.com/ocimirror/proxy/auth"
	"github.com/ocimirror/proxy/cache"
)

// WithAuth authorizes every request with a (client auth). Without it, pulls
// are anonymous and pushes to hosted repositories are refused.
func WithAuth(a *auth.Authorizer) Option { return func(h *Handler) { h.auth = a } }

// WithPrivate marks upstream caches whose content only authenticated users may
// pull (upstreams[].public: false), whatever auth.anonymouspull says.
func WithPrivate(caches ...*cache.Cache) Option {
	return func(h *Handler) {
		for _, c := range caches {
			h.private[c] = true
		}
	}
}

// authorize checks that the request may do what it asks and returns it with
// the user in its context.
func (h *Handler) authorize(r *http.Request, req *request) (*http.Request, error) {
	need := h.needs(r, req)
	user, err := h.auth.Authorize(r, need...)
	if err != nil {
		return nil, err
	}
	if user == "" && req.cache != nil && h.private[req.cache] {
		return nil, h.auth.Challenge(r, need...)
	}
	if user == "" {
		return r, nil // anonymous: auth.UserFrom already says ""; no request copy per pull
	}
	req.user = user
	return r.WithContext(auth.WithUser(r.Context(), user)), nil
}

// needs lists what a request needs, as distribution's registry asks for it:
// reads need pull, uploads and manifest PUTs push and pull, deletes delete, a
// cross-repository mount also pull on the source.
func (h *Handler) needs(r *http.Request, req *request) []auth.Access {
	switch {
	case req.kind == kindBase:
		return nil
	case req.kind == kindCatalog:
		return []auth.Access{{Action: auth.Pull}}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return []auth.Access{{Repo: req.name, Action: auth.Pull}}
	case http.MethodDelete:
		return []auth.Access{{Repo: req.name, Action: auth.Delete}}
	}
	need := []auth.Access{{Repo: req.name, Action: auth.Push}, {Repo: req.name, Action: auth.Pull}}
	if from := r.URL.Query().Get("from"); from != "" && req.kind == kindUpload {
		need = append(need, auth.Access{Repo: from, Action: auth.Pull})
	}
	return need
}
