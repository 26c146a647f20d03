package mirror

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ocimirror/proxy/internal/testregistry"
)

var (
	linuxAMD64   = v1.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64   = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	windowsAMD64 = v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2655"}
)

// platformImage is a random image of layers layers of size bytes whose config
// names p.
func platformImage(t testing.TB, p v1.Platform, size, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(size, layers)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return mutate.MediaType(img, types.OCIManifestSchema1)
}

// platformIndex is an OCI index of a linux/amd64, a linux/arm64/v8 and a
// windows/amd64 image, its children in that order.
func platformIndex(t testing.TB, size, layers int64) (v1.ImageIndex, []v1.Image) {
	t.Helper()
	var adds []mutate.IndexAddendum
	var imgs []v1.Image
	for _, p := range []v1.Platform{linuxAMD64, linuxARM64, windowsAMD64} {
		img := platformImage(t, p, size, layers)
		imgs = append(imgs, img)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	idx := mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...)
	return idx, imgs
}

// artifact is an OCI artifact manifest (a signature, an SBOM) referring to subject.
func artifact(t testing.TB, subject v1.Descriptor, artifactType string) v1.Image {
	t.Helper()
	img, err := random.Image(300, 1)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.MediaType(artifactType))
	return mutate.Subject(img, subject).(v1.Image)
}

// describe returns the descriptor of a manifest.
func describe(t testing.TB, m interface {
	Digest() (v1.Hash, error)
	Size() (int64, error)
	MediaType() (types.MediaType, error)
}) v1.Descriptor {
	t.Helper()
	h, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	sz, err := m.Size()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := m.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{Digest: h, Size: sz, MediaType: mt}
}

func digestOf(t testing.TB, m interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := m.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// endpoint is repo on the registry at host.
func endpoint(t testing.TB, host, repo string) Endpoint {
	t.Helper()
	r, err := name.NewRepository(host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return Endpoint{Repo: r, Insecure: true}
}

// writeBy pushes m (an image or an index) to ref on host ("repo@sha256:..." or
// "repo:tag") with remote's defaults, as a client would.
func writeBy(t testing.TB, host, ref string, m remote.Taggable) {
	t.Helper()
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	switch m := m.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(r, m)
	case v1.Image:
		err = remote.Write(r, m)
	default:
		err = remote.Put(r, m)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// headDigest returns the digest ref has on host, or "" when it is not there.
func headDigest(t testing.TB, host, ref string) string {
	t.Helper()
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if isNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatalf("head %s: %v", ref, err)
	}
	return d.Digest.String()
}

// referrersAt lists the referrers of subject in repo on host (API or tag schema).
func referrersAt(t testing.TB, host, repo string, subject v1.Hash) []v1.Descriptor {
	t.Helper()
	d, err := name.NewDigest(host+"/"+repo+"@"+subject.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatalf("referrers of %s: %v", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	return im.Manifests
}

func hasDigest(ds []v1.Descriptor, h v1.Hash) bool {
	for _, d := range ds {
		if d.Digest == h {
			return true
		}
	}
	return false
}

// front is an httptest server in front of a registry: handle sees every request
// first and answers it (returning true) or lets it through to the registry. It
// records when each request arrived.
type front struct {
	*httptest.Server
	Host string

	mu   sync.Mutex
	hits []hit
}

type hit struct {
	at     time.Time
	method string
	path   string
}

func newFront(t testing.TB, reg *testregistry.Registry, handle func(w http.ResponseWriter, r *http.Request) bool) *front {
	t.Helper()
	u, err := url.Parse(reg.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ErrorLog = nil
	f := &front{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits = append(f.hits, hit{at: time.Now(), method: r.Method, path: r.URL.Path})
		f.mu.Unlock()
		if handle != nil && handle(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	f.Host = strings.TrimPrefix(f.URL, "http://")
	return f
}

// hitsSince returns the requests that arrived at or after t.
func (f *front) hitsSince(t time.Time) []hit {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []hit
	for _, h := range f.hits {
		if !h.at.Before(t) {
			out = append(out, h)
		}
	}
	return out
}

// quickRetries keeps retry waits short in tests.
var quickRetries = WithRetries(3, 10*time.Millisecond)
