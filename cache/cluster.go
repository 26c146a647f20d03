package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/upstream"
)

// Defaults of the cluster coordination of fills.
const (
	// DefaultLeaseTTL is how long a fill lease lives without renewal: how long
	// the cluster waits for a replica that died mid-fill before another takes
	// over. The holder renews it every third of it while the fill runs.
	DefaultLeaseTTL = 5 * time.Second
	// DefaultClusterWait bounds how long a replica waits for another's fill
	// before it fetches the blob itself.
	DefaultClusterWait = 15 * time.Minute
)

// WithCluster coordinates fills with the other replicas sharing the store:
// one replica fetches a digest upstream while the others wait for its commit
// and then read the blob from the store. leaseTTL and wait (0: the defaults)
// are the lease's life without renewal and the longest wait for another
// replica's fill.
func WithCluster(c cluster.Coordinator, leaseTTL, wait time.Duration) Option {
	return func(ca *Cache) {
		ca.coord = c
		if leaseTTL > 0 {
			ca.leaseTTL = leaseTTL
		}
		if wait > 0 {
			ca.clusterWait = wait
		}
	}
}

// source is where a fill's runner takes the blob's bytes from.
type source int

const (
	fromUpstream source = iota // this replica holds the fill lease, or fetches alone
	fromStore                  // another replica committed the blob
	fromPeer                   // another replica fills it now: stream its fill
)

// claim is claimFill's decision.
type claim struct {
	from    source
	peer    string // fromPeer: the peer URL the lease holder published
	release func() // ends the lease after the commit; a no-op unless held
}

// claimFill decides where the fill f gets its bytes: from the upstream (this
// replica holds the cluster's lease on the digest, or nobody can tell because
// Redis is unreachable), from the lease holder's fill in progress (peer
// streaming, at most maxPeerTries times per fill, counted in tries), or from
// the store (another replica committed the blob while this one waited).
// release ends the lease; the fill calls it after its commit, so waiters
// find the blob when they wake.
//
// Without peer streaming the clients of a waiting replica block until the
// blob is committed elsewhere and copied from the store.
func (c *Cache) claimFill(f *fill, tries *int) claim {
	noop := func() {}
	alone := claim{from: fromUpstream, release: noop}
	if !c.coord.Clustered() {
		return alone
	}
	key := fillLease(f.dgst)
	log := c.log.WithField("digest", f.dgst)
	ctx, cancel := context.WithTimeout(c.ctx, c.clusterWait)
	defer cancel()
	for {
		held, release, err := c.coord.Lease(ctx, key, c.leaseTTL)
		if err != nil {
			log.WithError(err).Debug("no fill lease; fetching alone")
			return alone
		}
		if held {
			// The previous holder may have committed just before releasing.
			if _, err := c.store.StatBlob(ctx, f.dgst); err == nil {
				release()
				return claim{from: fromStore, release: noop}
			}
			c.publishPeer(ctx, f.dgst)
			return claim{from: fromUpstream, release: release}
		}
		if peer := c.holderPeer(ctx, f.dgst, tries); peer != "" {
			return claim{from: fromPeer, peer: peer, release: noop}
		}
		// Another replica fills: wait for its release (after its commit, or
		// its failure) or for its lease to expire (it died), then look again.
		werr := c.waitHolder(ctx, key, *tries)
		if errors.Is(werr, errLookAgain) {
			continue
		}
		if _, err := c.store.StatBlob(c.ctx, f.dgst); err == nil {
			return claim{from: fromStore, release: noop}
		}
		if werr != nil {
			if c.ctx.Err() == nil {
				msg := "waiting for another replica's fill failed; fetching alone"
				if errors.Is(werr, context.DeadlineExceeded) {
					msg = "another replica's fill took longer than the cluster wait; fetching alone"
				}
				log.WithError(werr).Warn(msg)
			}
			return alone
		}
	}
}

// peerPoll is how often a waiting replica that may stream from the holder
// looks for the peer URL the holder publishes just after taking the lease.
const peerPoll = 500 * time.Millisecond

// errLookAgain: the holder may have published its peer URL meanwhile.
var errLookAgain = errors.New("look for the holder's peer URL again")

// waitHolder waits for the release or expiry of the lease key. While peer
// streaming may still be tried, it returns errLookAgain every peerPoll, since
// a holder publishes its URL a moment after it took the lease.
func (c *Cache) waitHolder(ctx context.Context, key string, tries int) error {
	if c.peers == nil || tries >= maxPeerTries {
		return c.coord.WaitReleased(ctx, key)
	}
	pctx, cancel := context.WithTimeout(ctx, peerPoll)
	defer cancel()
	err := c.coord.WaitReleased(pctx, key)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		return errLookAgain
	}
	return err
}

// fillLease is the cluster lease of a fill of dgst: its holder fetches the
// blob for the cluster, and no replica evicts the blob meanwhile.
func fillLease(dgst digest.Digest) string { return "fill:" + dgst.String() }

// copyStored fills f from the blob another replica committed, verifying it
// again on the way (what is read from the store is hashed like an upstream
// body). It goes on after the bytes a broken peer stream left in the spool.
func (c *Cache) copyStored(f *fill) error {
	rc, info, err := c.store.OpenBlob(c.ctx, f.dgst)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := f.begin(info.Size); err != nil {
		return err
	}
	return f.copyFrom(rc, info.Size)
}

// Cluster coordination of tag revalidations.
const (
	// tagLeaseTTL is how long a tag revalidation lease lives without
	// renewal: a replica that dies mid-HEAD holds the others up this long at
	// most (they wait tagWait, then HEAD themselves).
	tagLeaseTTL = 2 * time.Second
	// tagResultTTL is how long the digest a revalidation found stays readable
	// by the replicas that waited for it. It only has to outlive the release
	// that wakes them; it is not a freshness window (proxy.tagfreshness is).
	tagResultTTL = time.Second
	// tagWait bounds how long a replica waits for another's revalidation of
	// the same tag before it sends its own HEAD.
	tagWait = 2 * time.Second
)

// headTag asks the upstream what digest tag of repo points to now, once for
// the whole cluster: the replica that takes the lease on the tag sends the
// HEAD and publishes the descriptor; a replica that finds the lease taken
// waits for its release (at most tagWait) and uses what was published,
// sending its own HEAD when nothing was (the holder failed or died). Alone,
// or when the coordination service is unreachable, it just sends the HEAD.
// Concurrent callers in this process are coalesced before this (shared).
func (c *Cache) headTag(ctx context.Context, repo repository, tag string, accept []string) (upstream.Descriptor, error) {
	head := func() (upstream.Descriptor, error) { return c.up.HeadManifest(ctx, repo.up, tag, accept) }
	if !c.coord.Clustered() {
		return head() // on every revalidation: no lease key to build
	}
	key := tagKey(c.up.Host(), repo.up, tag, accept)
	lead := func() (upstream.Descriptor, error) {
		desc, err := head()
		if err == nil && desc.Digest != "" {
			if b, merr := json.Marshal(desc); merr == nil {
				if perr := c.coord.Put(ctx, key, string(b), tagResultTTL); perr != nil {
					c.log.WithError(perr).WithField("lease", key).Debug("tag revalidation not published")
				}
			}
		}
		return desc, err
	}
	published := func() (upstream.Descriptor, error) {
		var desc upstream.Descriptor
		v, ok, err := c.coord.Get(ctx, key)
		switch {
		case err != nil:
			return desc, err
		case !ok:
			return desc, errors.New("nothing published")
		}
		if err := json.Unmarshal([]byte(v), &desc); err != nil || desc.Digest.Validate() != nil {
			c.log.WithField("lease", key).WithField("value", v).Warn("malformed tag revalidation result in the cluster; revalidating alone")
			return desc, errors.New("malformed result")
		}
		return desc, nil
	}
	return clusterOnce(ctx, c, "tag revalidation", key, tagLeaseTTL, tagWait, lead, head, published)
}

// clusterOnce does a piece of upstream work once for the whole cluster, under
// the lease key: the replica that takes the lease runs lead (the work, and
// whatever it leaves for the others: a published result, a stored manifest)
// and releases the lease after it; a replica that finds the lease taken waits
// for its release (at most wait) and takes result, the holder's outcome, and
// runs alone (the work by itself) when that fails: the holder failed or
// died. Alone too it runs when it is not in a cluster or the coordination
// service is unreachable. what names the work in the debug log.
func clusterOnce[T any](ctx context.Context, c *Cache, what, key string, ttl, wait time.Duration, lead, alone, result func() (T, error)) (T, error) {
	if !c.coord.Clustered() {
		return alone()
	}
	log := c.log.WithField("lease", key)
	held, release, err := c.coord.Lease(ctx, key, ttl)
	if err != nil {
		log.WithError(err).Debug("no " + what + " lease; going alone")
		return alone()
	}
	if held {
		defer release()
		return lead()
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	werr := c.coord.WaitReleased(wctx, key)
	cancel()
	if werr != nil {
		log.WithError(werr).Debug("waiting for another replica's " + what + " failed; going alone")
		return alone()
	}
	v, err := result()
	if err != nil {
		log.WithError(err).Debug("no result of another replica's " + what + "; going alone")
		return alone()
	}
	return v, nil
}

// tagKey names the revalidation of tag of repo on the upstream host in the
// cluster: "tag:<host>/<repo>:<tag>", followed by a short hash of the Accept
// list when there is one, since the upstream may answer different Accept
// lists with different manifests of one tag.
func tagKey(host, repo, tag string, accept []string) string {
	return "tag:" + tagName(host, repo, tag, accept)
}

// tagName is "<host>/<repo>:<tag>", followed by a short hash of the Accept
// list when there is one: tagKey's and tagFetchKey's name of the tag.
func tagName(host, repo, tag string, accept []string) string {
	key := host + "/" + repo + ":" + tag
	if len(accept) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(accept, ",")))
		key += "#" + hex.EncodeToString(sum[:6])
	}
	return key
}

// Cluster coordination of manifest fetches.
const (
	// manifestLeaseTTL is how long a manifest fetch lease lives without
	// renewal (the holder renews it while it fetches): a replica that dies
	// mid-GET holds the others up this long at most.
	manifestLeaseTTL = 2 * time.Second
	// manifestWait bounds how long a replica waits for another's fetch of
	// the same manifest before it GETs the manifest itself. It is longer
	// than tagWait because a GET carries a body and may be retried.
	manifestWait = 10 * time.Second
)

// manifestOnce runs fetch, which GETs a manifest upstream and stores it,
// once for the whole cluster: the replica that takes the lease key runs
// fetch and releases the lease after it; a replica that finds the lease
// taken waits for its release (at most manifestWait) and reads what the
// holder stored with stored, running fetch itself when that fails (the
// holder failed or died). Alone, or when the coordination service is
// unreachable, it just runs fetch. Concurrent callers in this process are
// coalesced before this (shared).
func (c *Cache) manifestOnce(ctx context.Context, key string, fetch, stored func() (*Manifest, error)) (*Manifest, error) {
	lead := func() (*Manifest, error) {
		// The previous holder may have stored it just before releasing.
		if m, err := stored(); err == nil {
			return m, nil
		}
		return fetch()
	}
	return clusterOnce(ctx, c, "manifest fetch", key, manifestLeaseTTL, manifestWait, lead, fetch, stored)
}

// fetchDigest GETs the manifest dgst of repo upstream once for the cluster
// (manifestOnce); a replica that waited reads it from the store, which
// checks it hashes to dgst.
func (c *Cache) fetchDigest(ctx context.Context, repo repository, dgst digest.Digest, accept []string) (*Manifest, error) {
	return c.manifestOnce(ctx, manifestKey(c.up.Host(), repo.up, dgst),
		func() (*Manifest, error) { return c.fetchManifest(ctx, repo, dgst.String(), dgst, accept) },
		func() (*Manifest, error) { return c.localManifest(ctx, repo, dgst, Miss) })
}

// manifestKey names the fetch of the manifest dgst of repo on the upstream
// host in the cluster: "manifest:<host>/<repo>@<digest>". The Accept list is
// not part of it: a digest names one body whatever the client accepts.
func manifestKey(host, repo string, dgst digest.Digest) string {
	return "manifest:" + host + "/" + repo + "@" + dgst.String()
}

// fetchTagOnce GETs tag of repo upstream, stores and tags the manifest, once
// for the whole cluster (manifestOnce): the holder publishes the digest it
// got (for tagResultTTL, as headTag does), and a replica that waited reads
// that manifest from the store, which checks it hashes to the digest.
func (c *Cache) fetchTagOnce(ctx context.Context, repo repository, tag string, accept []string) (*Manifest, error) {
	key := tagFetchKey(c.up.Host(), repo.up, tag, accept)
	fetch := func() (*Manifest, error) {
		m, err := c.fetchAndTag(ctx, repo, tag, accept)
		if err == nil && !m.unstored && c.coord.Clustered() {
			if perr := c.coord.Put(ctx, key, m.Digest.String(), tagResultTTL); perr != nil {
				c.log.WithError(perr).WithField("lease", key).Debug("tag fetch not published")
			}
		}
		return m, err
	}
	stored := func() (*Manifest, error) {
		v, ok, err := c.coord.Get(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("read the digest another replica fetched for %s: %w", key, err)
		}
		if !ok {
			return nil, fmt.Errorf("no digest published for %s", key)
		}
		dgst, err := digest.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("digest published for %s: %w", key, err)
		}
		return c.localManifest(ctx, repo, dgst, Miss)
	}
	return c.manifestOnce(ctx, key, fetch, stored)
}

// tagFetchKey names the GET of tag of repo on the upstream host in the
// cluster: "manifest:<host>/<repo>:<tag>", with tagKey's hash of the Accept
// list, since the upstream may answer different Accept lists with different
// manifests of one tag.
func tagFetchKey(host, repo, tag string, accept []string) string {
	return "manifest:" + tagName(host, repo, tag, accept)
}
