package proxy

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// manifest serves GET and HEAD of /v2/<name>/manifests/<tag|digest>.
func (h *Handler) manifest(w http.ResponseWriter, r *http.Request, req *request) error {
	accept := acceptList(r.Header)
	m, err := req.cache.Manifest(r.Context(), req.repo, req.ref, accept)
	if err != nil {
		return err
	}
	req.source = m.Source
	if req.dgst == "" && strings.HasPrefix(m.MediaType, "application/vnd.oci.") && !accepts(accept, m.MediaType) {
		return withStatus(http.StatusNotFound, errcode.ErrorCodeManifestUnknown,
			"the manifest of this tag is a "+m.MediaType+", which the Accept header does not allow")
	}
	etag := `"` + m.Digest.String() + `"`
	hdr := w.Header()
	hdr.Set("Docker-Content-Digest", m.Digest.String())
	hdr.Set("ETag", etag)
	if matchETag(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	hdr.Set("Content-Type", m.MediaType)
	hdr.Set("Content-Length", strconv.Itoa(len(m.Body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(m.Body)
	}
	return nil
}

// acceptList returns the media types of all Accept headers, without parameters.
func acceptList(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err == nil && mt != "" {
				out = append(out, mt)
			}
		}
	}
	return out
}

// accepts reports whether a client with this Accept list takes mediaType. No
// Accept header, or a wildcard, takes anything. As distribution's registry
// does, only OCI manifests and indexes by tag are refused to a client that does
// not list them (it could not parse them); Docker's types are served anyway.
func accepts(accept []string, mediaType string) bool {
	if len(accept) == 0 {
		return true
	}
	for _, a := range accept {
		if a == mediaType || a == "*/*" || a == "application/*" {
			return true
		}
	}
	return false
}

// matchETag reports whether an If-None-Match header names etag.
func matchETag(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == etag || part == "*" {
			return true
		}
	}
	return false
}
