package cache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/cluster"
)

// maxPeerTries bounds the peer streams one fill starts: a stream that broke
// is followed by at most this many more, then the fill waits for the commit
// or the lease as without peers.
const maxPeerTries = 4

// peerURLTTL is how long a holder's published peer URL lives. It outlives
// any wait for the fill (DefaultClusterWait); a later holder overwrites it.
const peerURLTTL = 20 * time.Minute

// Peers lets a replica that waits for another's fill stream the bytes from
// that replica's fill in progress instead of waiting for its commit.
type Peers struct {
	// Self is this replica's peer URL (proxy.peerurl), published with every
	// fill lease it takes.
	Self string
	// Signer makes the tokens of requests to peers (keyed by http.secret).
	Signer *cluster.PeerSigner
	// Client sends them; it carries no upstream credentials.
	Client *http.Client
	// Stall abandons a peer stream that sent nothing for this long.
	Stall time.Duration
}

// WithPeers turns peer streaming on (it needs WithCluster).
func WithPeers(p Peers) Option { return func(c *Cache) { c.peers = &p } }

// peerKey is the cluster value under which the holder of dgst's fill lease
// publishes its peer URL.
func peerKey(dgst digest.Digest) string { return "fillpeer:" + dgst.String() }

// publishPeer tells the replicas waiting for this replica's fill of dgst
// where to stream it from.
func (c *Cache) publishPeer(ctx context.Context, dgst digest.Digest) {
	if c.peers == nil {
		return
	}
	if err := c.coord.Put(ctx, peerKey(dgst), c.peers.Self, peerURLTTL); err != nil {
		c.log.WithError(err).WithField("digest", dgst).Debug("peer URL not published; the others wait for the commit")
	}
}

// holderPeer returns the peer URL the holder of dgst's fill lease published,
// "" when there is none, it is this replica's own, peer streaming is off, or
// the fill used its tries up (counted in tries).
func (c *Cache) holderPeer(ctx context.Context, dgst digest.Digest, tries *int) string {
	if c.peers == nil || *tries >= maxPeerTries {
		return ""
	}
	u, ok, err := c.coord.Get(ctx, peerKey(dgst))
	if err != nil || !ok || u == c.peers.Self {
		return ""
	}
	*tries++
	return u
}

// copyPeer fills f from the fill of the replica at peer, verifying the bytes
// exactly as an upstream body's (the peer is trusted no more than the
// upstream). An error wrapping errCut means the stream did not start or
// broke: the fill may go on from another source.
func (c *Cache) copyPeer(f *fill, peer string) error {
	ctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	log := c.log.WithField("digest", f.dgst).WithField("peer", peer)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peer+cluster.PeerFillPath+f.dgst.String(), nil)
	if err != nil {
		return fmt.Errorf("blob %s: peer request: %w", f.dgst, err)
	}
	req.Header.Set(cluster.PeerTokenHeader, c.peers.Signer.Sign(f.dgst.String(), time.Now()))
	resp, err := c.peers.Client.Do(req)
	if err != nil {
		log.WithError(err).Info("peer unreachable; waiting for the fill lease")
		return fmt.Errorf("blob %s: peer %s: %w: %w", f.dgst, peer, errCut, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		log.WithField("status", resp.StatusCode).Info("peer has no fill of the blob; waiting for the fill lease")
		return fmt.Errorf("blob %s: peer %s answered %s: %w", f.dgst, peer, resp.Status, errCut)
	}
	if err := f.begin(resp.ContentLength); err != nil {
		return err
	}
	start, before := time.Now(), f.written
	err = f.copyFrom(newStallReader(resp.Body, c.peers.Stall, cancel), resp.ContentLength)
	got := f.written - before
	c.metrics.PeerBytes(got)
	log = log.WithField("bytes", got).WithField("from", before).WithField("duration", time.Since(start).Round(time.Millisecond))
	if err != nil {
		log.WithError(err).Warn("peer fill broke off")
		return err
	}
	log.Info("peer fill: blob streamed from the replica that fetches it, verified")
	return nil
}

// stallReader cancels a body's request when no byte came for stall.
type stallReader struct {
	r     io.Reader
	stall time.Duration
	timer *time.Timer
}

func newStallReader(r io.Reader, stall time.Duration, cancel context.CancelFunc) *stallReader {
	if stall <= 0 {
		stall = time.Minute
	}
	return &stallReader{r: r, stall: stall, timer: time.AfterFunc(stall, cancel)}
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.stall)
	}
	if err != nil {
		s.timer.Stop()
	}
	return n, err
}
