package hosted

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// putManifest stores a manifest through distribution's handler after bounding
// its size, answers OCI-Subject when it names a subject (this registry serves
// the referrers API), and publishes a push event once it is stored.
func (rg *Registry) putManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, rg.maxManifest+1))
	if err != nil {
		writeError(w, r, http.StatusBadRequest, errcode.ErrorCodeManifestInvalid.WithMessage("reading the manifest: "+err.Error()))
		return
	}
	if int64(len(body)) > rg.maxManifest {
		writeError(w, r, http.StatusRequestEntityTooLarge, errcode.ErrorCodeManifestInvalid.WithMessage(
			"manifest exceeds the limit of "+strconv.FormatInt(rg.maxManifest, 10)+" bytes"))
		return
	}
	var m struct {
		Subject *v1.Descriptor `json:"subject"`
	}
	_ = json.Unmarshal(body, &m) // distribution's handler reports bad JSON
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	sw := &statusWriter{ResponseWriter: w}
	if m.Subject != nil && m.Subject.Digest.Validate() == nil {
		sw.onSuccess = func(h http.Header) { h.Set("OCI-Subject", m.Subject.Digest.String()) }
	}
	rg.app.ServeHTTP(sw, r)
	if sw.status != http.StatusCreated {
		return
	}
	dgst, _ := digest.Parse(sw.Header().Get("Docker-Content-Digest"))
	if dgst == "" {
		dgst = digest.FromBytes(body)
	}
	rg.publish(r, Event{Action: "push", Repo: name, Tag: tagOf(ref), Digest: dgst,
		MediaType: mediaType(r.Header.Get("Content-Type"), body)})
}

// deleteManifest deletes through distribution's handler and publishes a delete
// event once it is gone.
func (rg *Registry) deleteManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	sw := &statusWriter{ResponseWriter: w}
	rg.app.ServeHTTP(sw, r)
	if sw.status != http.StatusAccepted {
		return
	}
	e := Event{Action: "delete", Repo: name, Tag: tagOf(ref)}
	if e.Tag == "" {
		e.Digest = digest.Digest(ref)
	}
	rg.publish(r, e)
}

func (rg *Registry) publish(r *http.Request, e Event) {
	if rg.user != nil {
		e.User = rg.user(r.Context())
	}
	e.Time = time.Now()
	if missed := rg.bus.publish(e); missed > 0 {
		rg.log.WithFields(map[string]any{"repo": e.Repo, "tag": e.Tag, "digest": e.Digest, "subscribers": missed}).
			Warn("event subscriber fell behind; event dropped")
	}
}

// tagOf returns ref when it is a tag, "" when it is a digest.
func tagOf(ref string) string {
	if strings.Contains(ref, ":") {
		return ""
	}
	return ref
}

// mediaType is the Content-Type a manifest was pushed with, or the mediaType
// field of its body.
func mediaType(contentType string, body []byte) string {
	if ct, _, _ := strings.Cut(contentType, ";"); strings.TrimSpace(ct) != "" {
		return strings.TrimSpace(ct)
	}
	var m struct {
		MediaType string `json:"mediaType"`
	}
	_ = json.Unmarshal(body, &m)
	return m.MediaType
}

// statusWriter records the status distribution's handler answered with and
// adds headers to a successful answer before it goes out.
type statusWriter struct {
	http.ResponseWriter
	status    int
	onSuccess func(http.Header)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if code < 300 && w.onSuccess != nil {
			w.onSuccess(w.Header())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeError writes a registry errcode body with status.
func writeError(w http.ResponseWriter, r *http.Request, status int, e errcode.Error) {
	body, _ := json.Marshal(errcode.Errors{e})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
