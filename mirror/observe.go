package mirror

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// tally counts what one copy did at its destination. It is filled by observer,
// which watches the destination's requests on the wire: go-containerregistry
// decides per blob whether to skip (HEAD 200), mount (POST ?mount= answered 201)
// or upload (PATCH, then PUT ?digest=) without telling its caller, and the
// answers it got say which it was.
type tally struct {
	manifests, blobs, mounted, skipped, referrers atomic.Int64
	bytes                                         atomic.Int64 // upload bytes sent, minus those of failed requests
	tagged                                        atomic.Bool  // the copy's tag was written

	// expect maps a tag about to be written to the digest it will name, so that
	// a HEAD finding the tag with that digest, and a PUT of the tag, are known
	// to be about that manifest.
	expect sync.Map // string -> string
	// tag is the copy's destination tag ("" for a copy by digest).
	tag string
	// seen holds the manifest digests counted, written or skipped, so that a
	// manifest written by digest and then tagged counts once.
	seen sync.Map // string -> struct{}
}

// first tells whether digest was not counted yet, and marks it counted.
func (t *tally) first(digest string) bool {
	_, loaded := t.seen.LoadOrStore(digest, struct{}{})
	return !loaded
}

func (t *tally) result() Result {
	return Result{
		Manifests: int(t.manifests.Load()),
		Blobs:     int(t.blobs.Load()),
		Mounted:   int(t.mounted.Load()),
		Skipped:   int(t.skipped.Load()),
		Referrers: int(t.referrers.Load()),
		Bytes:     t.bytes.Load(),
		Tagged:    t.tagged.Load(),
	}
}

// observer is the destination transport of one copy: it counts into t.
type observer struct {
	t    *tally
	next http.RoundTripper
}

func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body *countingBody
	if req.Body != nil && req.Body != http.NoBody && (req.Method == http.MethodPatch || req.Method == http.MethodPut) &&
		!strings.Contains(req.URL.Path, "/manifests/") {
		body = &countingBody{rc: req.Body, t: o.t}
		req = req.Clone(req.Context())
		req.Body = body
	}
	resp, err := o.next.RoundTrip(req)
	ok := err == nil && resp.StatusCode/100 == 2
	if body != nil && !ok {
		o.t.bytes.Add(-body.n.Load()) // a retry sends them again
	}
	if ok {
		o.count(req, resp)
	}
	return resp, err
}

// count classifies a successful destination request.
func (o *observer) count(req *http.Request, resp *http.Response) {
	p := req.URL.Path
	switch req.Method {
	case http.MethodHead:
		if strings.Contains(p, "/blobs/") {
			o.t.skipped.Add(1)
			return
		}
		if _, ref, ok := strings.Cut(p, "/manifests/"); ok {
			dgst := ""
			if strings.Contains(ref, ":") {
				dgst = ref // by digest: the manifest is there
			} else if want, ok := o.t.expect.Load(ref); ok && want == resp.Header.Get("Docker-Content-Digest") {
				dgst = want.(string) // the tag already names what we would write
			}
			if dgst != "" && o.t.first(dgst) {
				o.t.skipped.Add(1)
			}
		}
	case http.MethodPost:
		if resp.StatusCode == http.StatusCreated && req.URL.Query().Get("mount") != "" {
			o.t.mounted.Add(1)
		}
	case http.MethodPut:
		if _, ref, ok := strings.Cut(p, "/manifests/"); ok {
			if IsReferrersTag(ref) { // the referrers index go-containerregistry keeps up to date
				return
			}
			dgst := ref
			if !strings.Contains(ref, ":") {
				if ref == o.t.tag {
					o.t.tagged.Store(true)
				}
				want, _ := o.t.expect.Load(ref)
				dgst, _ = want.(string)
			}
			if dgst == "" || o.t.first(dgst) {
				o.t.manifests.Add(1)
			}
		} else if req.URL.Query().Get("digest") != "" {
			o.t.blobs.Add(1)
		}
	}
}

// countingBody counts the bytes of an upload as they are sent.
type countingBody struct {
	rc io.ReadCloser
	t  *tally
	n  atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	b.t.bytes.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

// IsReferrersTag tells whether tag is a tag of the OCI referrers tag schema,
// sha256-<64 hex>: an index of the referrers of that digest, kept by whoever
// pushes referrers to a registry without the referrers API. Such tags are not
// worth copying as tags of their own: Copy brings referrers along with their
// subjects, and the destination keeps its own index (or has the API).
func IsReferrersTag(tag string) bool {
	hexPart, ok := strings.CutPrefix(tag, "sha256-")
	if !ok || len(hexPart) != 64 {
		return false
	}
	for _, c := range hexPart {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
