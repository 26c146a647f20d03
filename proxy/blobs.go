package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"github.com/ocimirror/proxy/cache"
)

// blob serves GET and HEAD of /v2/<name>/blobs/<digest>, with single Range requests.
func (h *Handler) blob(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	hdr := w.Header()
	if r.Method == http.MethodHead {
		size, src, err := req.cache.StatBlob(ctx, req.repo, req.dgst)
		if err != nil {
			return err
		}
		req.source = src
		setBlobHeaders(hdr, req)
		if size >= 0 {
			hdr.Set("Content-Length", strconv.FormatInt(size, 10))
		}
		w.WriteHeader(http.StatusOK)
		return nil
	}
	b, err := req.cache.Blob(ctx, req.repo, req.dgst)
	if err != nil {
		return err
	}
	defer b.Close()
	req.source = b.Source
	etag := setBlobHeaders(hdr, req)
	if matchETag(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if u := b.RedirectURL(); u != "" {
		// A hit the backend serves itself (storage.redirect): the client
		// follows with its Range header, if any, to the presigned URL.
		hdr.Set("Location", u)
		w.WriteHeader(http.StatusTemporaryRedirect)
		return nil
	}
	size := b.Size()
	status, off, n := http.StatusOK, int64(0), int64(-1)
	if rh := r.Header.Get("Range"); rh != "" {
		if size, err = b.WaitSize(ctx); err != nil {
			return err
		}
		rng, ok, err := parseRange(rh, size)
		if err != nil {
			return rangeError(size)
		}
		if ok {
			status, off, n = http.StatusPartialContent, rng.start, rng.length
			hdr.Set("Content-Range", rng.contentRange(size))
		}
	}
	switch {
	case n >= 0:
		hdr.Set("Content-Length", strconv.FormatInt(n, 10))
	case size >= 0:
		hdr.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	return writeBlobBody(ctx, w, b, status, off, n)
}

// writeBlobBody writes the status line and n bytes of b from off (n < 0: to
// the end). For a fill it waits for the first bytes before the status line,
// so that a fill that fails early still gets a proper error answer, and
// flushes each chunk as it arrives. An error after the status line wraps
// errBodyCut: the caller must cut the response, never end it cleanly.
func writeBlobBody(ctx context.Context, w http.ResponseWriter, b *cache.Blob, status int, off, n int64) error {
	body, err := b.Reader(ctx, off, n)
	if err != nil {
		return err
	}
	var first []byte
	out := io.Writer(w)
	if b.Source == cache.Miss {
		if first, err = peek(body); err != nil {
			return err
		}
		// A fill hands out bytes as they arrive: push each chunk to the client
		// rather than let it sit in a buffer while the fill waits upstream.
		out = flushWriter{w}
	} else {
		defer corked(ctx)()
	}
	w.WriteHeader(status)
	if _, err := out.Write(first); err != nil {
		return errors.Join(errBodyCut, err)
	}
	if _, err := io.Copy(out, body); err != nil {
		return errors.Join(errBodyCut, err)
	}
	return nil
}

// flushWriter flushes the response after every write.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = http.NewResponseController(f.w).Flush()
	}
	return n, err
}

// ReadFrom lets the fill hand over file windows, which net/http sends with
// sendfile when the length is known.
func (f flushWriter) ReadFrom(r io.Reader) (int64, error) {
	n, err := io.Copy(f.w, r)
	if err == nil {
		err = http.NewResponseController(f.w).Flush()
	}
	return n, err
}

// peek reads the first bytes of a body; io.EOF is no error.
func peek(r io.Reader) ([]byte, error) {
	buf := make([]byte, 32<<10)
	n, err := r.Read(buf)
	if err == io.EOF {
		err = nil
	}
	return buf[:n], err
}

// setBlobHeaders sets the headers every blob answer carries and returns the ETag.
func setBlobHeaders(hdr http.Header, req *request) string {
	etag := `"` + req.dgst.String() + `"`
	hdr.Set("Docker-Content-Digest", req.dgst.String())
	hdr.Set("ETag", etag)
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Content-Type", "application/octet-stream")
	return etag
}

// errBodyCut marks a transfer that failed after the status line was sent.
var errBodyCut = errors.New("blob transfer cut short")

func rangeError(size int64) error {
	he := withStatus(http.StatusRequestedRangeNotSatisfiable, errcode.ErrorCodeRangeInvalid,
		"requested range not satisfiable for a blob of "+strconv.FormatInt(size, 10)+" bytes")
	he.header = http.Header{"Content-Range": {"bytes */" + strconv.FormatInt(size, 10)}}
	return he
}
