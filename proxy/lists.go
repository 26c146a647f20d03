package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocimirror/proxy/cache"
)

// maxPage bounds n in tags/list and _catalog.
const maxPage = 10000

// tags serves /v2/<name>/tags/list?n=&last=.
func (h *Handler) tags(w http.ResponseWriter, r *http.Request, req *request) error {
	n, last, err := pageParams(r.URL.Query())
	if err != nil {
		return err
	}
	p, err := req.cache.Tags(r.Context(), req.repo, n, last)
	if err != nil {
		return err
	}
	req.source = p.Source
	return writePage(w, r, "/v2/"+req.name+"/tags/list", n, p, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{req.name, nonNil(p.Items)})
}

// catalog serves /v2/_catalog?n=&last=: the cached and the hosted repositories.
func (h *Handler) catalog(w http.ResponseWriter, r *http.Request, req *request) error {
	n, last, err := pageParams(r.URL.Query())
	if err != nil {
		return err
	}
	repos, err := h.allRepositories(r.Context())
	if err != nil {
		return err
	}
	p := cache.Paginate(repos, n, last)
	return writePage(w, r, "/v2/_catalog", n, p, struct {
		Repositories []string `json:"repositories"`
	}{nonNil(p.Items)})
}

// referrers serves /v2/<name>/referrers/<digest>?artifactType=.
func (h *Handler) referrers(w http.ResponseWriter, r *http.Request, req *request) error {
	ref, err := req.cache.Referrers(r.Context(), req.repo, req.dgst, r.URL.Query().Get("artifactType"))
	if err != nil {
		return err
	}
	req.source = cache.Miss
	if ref.FiltersApplied != "" {
		w.Header().Set("OCI-Filters-Applied", ref.FiltersApplied)
	}
	return writeBody(w, r, v1.MediaTypeImageIndex, ref.Body)
}

func pageParams(q url.Values) (int, string, error) {
	n := 0
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 || v > maxPage {
			return 0, "", errcode.ErrorCodePaginationNumberInvalid.WithMessage("n must be a number from 0 to " + strconv.Itoa(maxPage)).WithDetail(s)
		}
		n = v
	}
	return n, q.Get("last"), nil
}

// writePage writes a JSON list and, when more follows, the Link header to the next
// page in the form the distribution spec gives.
func writePage(w http.ResponseWriter, r *http.Request, path string, n int, p cache.Page, v any) error {
	if p.More && len(p.Items) > 0 {
		q := url.Values{"last": {p.Items[len(p.Items)-1]}}
		if n > 0 {
			q.Set("n", strconv.Itoa(n))
		}
		w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
	}
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeBody(w, r, "application/json", body)
}

func writeBody(w http.ResponseWriter, r *http.Request, contentType string, body []byte) error {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
