package proxy

import (
	"io"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// logWriter records the status and byte count of a response for the access log.
// It keeps io.ReaderFrom, so a blob copied from a file still goes out by sendfile.
type logWriter struct {
	http.ResponseWriter
	start  time.Time
	status int
	bytes  int64
	err    error
}

func newLogWriter(w http.ResponseWriter) *logWriter {
	return &logWriter{ResponseWriter: w, start: time.Now()}
}

func (w *logWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom hands the copy to the underlying writer (sendfile for an *os.File).
func (w *logWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish counts the request in the metrics and writes its access log line.
func (h *Handler) finish(w *logWriter, r *http.Request, req *request) {
	took := time.Since(w.start)
	h.metrics.Request(routeNames[req.kind], r.Method, w.status, string(req.source), w.bytes, took)
	h.countPull(w, r, req)
	if h.access {
		h.logRequest(w, r, req, took)
	}
}

// countPull counts a pull for the console's most pulled repositories: a GET
// of a manifest answered 200, by the repository's stored name.
func (h *Handler) countPull(w *logWriter, r *http.Request, req *request) {
	if h.pulls == nil || req.kind != kindManifest || r.Method != http.MethodGet || w.status != http.StatusOK {
		return
	}
	name := req.name
	if req.cache != nil {
		name = req.cache.LocalName(req.repo)
	}
	h.pulls.Pull(name)
}

// routeNames label metrics by API route.
var routeNames = map[kind]string{
	kindInvalid: "invalid", kindBase: "base", kindCatalog: "catalog", kindManifest: "manifests", kindBlob: "blobs",
	kindUpload: "uploads", kindTags: "tags", kindReferrers: "referrers", kindPeer: "peer",
}

// logRequest writes the one line per request: method, path, status, bytes,
// duration, where the content came from, the upstream that served the name and
// the ns= query parameter containerd routes by. No header is logged: they may
// carry credentials.
func (h *Handler) logRequest(w *logWriter, r *http.Request, req *request, took time.Duration) {
	f := logrus.Fields{
		"method":   r.Method,
		"path":     r.URL.Path,
		"status":   w.status,
		"bytes":    w.bytes,
		"duration": took.Round(time.Microsecond).String(),
		"remote":   r.RemoteAddr,
	}
	if req.source != "" {
		f["cache"] = string(req.source)
	}
	if req.user != "" {
		f["user"] = req.user
	}
	if ns := r.URL.Query().Get("ns"); ns != "" {
		f["ns"] = ns // containerd's registry name: shows which upstream it asked for
	}
	if req.cache != nil {
		f["upstream"] = req.cache.Upstream().Host()
	}
	entry := h.log.WithFields(f)
	switch {
	case w.err != nil && w.status >= 500:
		entry.WithError(w.err).Error("request")
	case w.err != nil:
		entry.WithError(w.err).Info("request")
	default:
		entry.Info("request")
	}
}
