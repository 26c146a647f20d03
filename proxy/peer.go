package proxy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/storage"
)

// WithPeerFills serves the other replicas of a cluster this replica's fills
// in progress under cluster.PeerFillPath, to requests carrying a peer token
// that s verifies. Without it the route is a 404 like any other path that is
// no registry endpoint.
func WithPeerFills(s *cluster.PeerSigner) Option { return func(h *Handler) { h.peers = s } }

// isPeerRoute reports whether r is a request of another replica for a fill.
func (h *Handler) isPeerRoute(r *http.Request) bool {
	return h.peers != nil && strings.HasPrefix(r.URL.Path, cluster.PeerFillPath)
}

// peerFill answers GET /_proxy/fills/<digest> of another replica: the fill
// of the digest in progress here, its final bytes held back until verified
// exactly as for a client, or the stored blob; 404 when neither. Only a
// valid token (an HMAC of the digest and an expiry, keyed by http.secret)
// gets an answer other than 401 or 403; no upstream is asked.
func (h *Handler) peerFill(w http.ResponseWriter, r *http.Request, req *request) error {
	req.kind = kindPeer
	d, err := digest.Parse(strings.TrimPrefix(r.URL.Path, cluster.PeerFillPath))
	if err != nil {
		return errNotFound
	}
	req.dgst = d
	if r.Method != http.MethodGet {
		return errUnsupported
	}
	tok := r.Header.Get(cluster.PeerTokenHeader)
	if tok == "" {
		return withStatus(http.StatusUnauthorized, errcode.ErrorCodeUnauthorized, "peer token required")
	}
	if err := h.peers.Verify(d.String(), tok, time.Now()); err != nil {
		h.log.WithError(err).WithField("remote", r.RemoteAddr).Warn("peer fill request refused")
		return withStatus(http.StatusForbidden, errcode.ErrorCodeDenied, "invalid or expired peer token")
	}
	b, err := h.peerBlob(r.Context(), d)
	if err != nil {
		return err
	}
	defer b.Close()
	req.source = b.Source
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Docker-Content-Digest", d.String())
	if size := b.Size(); size >= 0 {
		hdr.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	return writeBlobBody(r.Context(), w, b, http.StatusOK, 0, -1)
}

// peerBlob finds d in the fills of every upstream's cache (a digest is one
// blob whichever upstream fills it), else in the store.
func (h *Handler) peerBlob(ctx context.Context, d digest.Digest) (*cache.Blob, error) {
	caches := []*cache.Cache{h.cache}
	for _, c := range h.hosts {
		caches = append(caches, c)
	}
	for _, c := range caches {
		b, err := c.PeerBlob(ctx, d)
		if !errors.Is(err, storage.ErrNotFound) {
			return b, err
		}
	}
	return nil, withStatus(http.StatusNotFound, errcode.ErrorCodeBlobUnknown, "no fill of this blob here")
}
