package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// pushIndex pushes an index of one random image per platform ("linux/amd64"),
// all sharing one layer, as repoTag.
func pushIndex(t *testing.T, reg *testregistry.Registry, repoTag string, platforms ...string) ggcr.ImageIndex {
	t.Helper()
	shared, err := random.Layer(700, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	var adds []mutate.IndexAddendum
	for _, p := range platforms {
		img, err := random.Image(1500, 2)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, shared); err != nil {
			t.Fatal(err)
		}
		osName, arch, _ := strings.Cut(p, "/")
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: ggcr.Descriptor{Platform: &ggcr.Platform{OS: osName, Architecture: arch}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	reg.PushIndex(t, repoTag, idx)
	return idx
}

// warmConfig writes a configuration with storage root, the default upstream
// and further upstreams (host -> URL), and returns its path.
func warmConfig(t *testing.T, root, defURL string, more map[string]string) string {
	t.Helper()
	doc := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %q}\n  delete: {enabled: true}\n"+
		"proxy:\n  remoteurl: %s\n  ttl: 1h\n  retries: 0\nupstreams:\n", root, defURL)
	for host, url := range more {
		doc += fmt.Sprintf("  - {host: %s, remoteurl: %s}\n", host, url)
	}
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// content lists what an image holds, by kind: manifests (the index's and each
// platform's) and blobs (configs and layers), with sizes.
func content(t *testing.T, idx ggcr.ImageIndex, img ggcr.Image) (manifests, blobs map[digest.Digest]int64) {
	t.Helper()
	manifests, blobs = map[digest.Digest]int64{}, map[digest.Digest]int64{}
	var images []ggcr.Image
	if idx != nil {
		im, err := idx.IndexManifest()
		must(t, err)
		raw, err := idx.RawManifest()
		must(t, err)
		manifests[digest.FromBytes(raw)] = int64(len(raw))
		for _, d := range im.Manifests {
			child, err := idx.Image(d.Digest)
			must(t, err)
			images = append(images, child)
		}
	} else {
		images = []ggcr.Image{img}
	}
	for _, im := range images {
		raw, err := im.RawManifest()
		must(t, err)
		manifests[digest.FromBytes(raw)] = int64(len(raw))
		m, err := im.Manifest()
		must(t, err)
		for _, d := range append([]ggcr.Descriptor{m.Config}, m.Layers...) {
			blobs[digest.Digest(d.Digest.String())] = d.Size
		}
	}
	return manifests, blobs
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// checkStored checks that repo:tag, every manifest and every blob of an image
// are in the store under root (linked in repo, with their data) and in its index.
func checkStored(t *testing.T, root, repo, tag string, top digest.Digest, manifests, blobs map[digest.Digest]int64) {
	t.Helper()
	ctx := context.Background()
	store, err := storage.NewFilesystem(root)
	must(t, err)
	ix := openTestIndex(t, root)
	defer ix.Close()
	inIndex := func(k scheduler.Key) {
		if _, ok := ix.Get(k); !ok {
			t.Errorf("%s is not in the index", k)
		}
	}
	if d, err := store.ResolveTag(ctx, repo, tag); err != nil || d != top {
		t.Errorf("tag %s:%s -> %s, %v; want %s", repo, tag, d, err, top)
	}
	inIndex(scheduler.Key{Kind: scheduler.KindTag, Repo: repo, Tag: tag})
	for d := range manifests {
		if _, err := store.GetManifest(ctx, repo, d); err != nil {
			t.Errorf("manifest %s@%s: %v", repo, d, err)
		}
		inIndex(scheduler.Key{Kind: scheduler.KindManifest, Repo: repo, Digest: d})
	}
	for d, size := range blobs {
		info, err := store.StatBlob(ctx, d)
		if err != nil || info.Size != size || !store.HasLayer(ctx, repo, d) {
			t.Errorf("blob %s@%s: %+v, %v, linked %v; want %d bytes, linked", repo, d, info, err, store.HasLayer(ctx, repo, d), size)
		}
		inIndex(scheduler.Key{Kind: scheduler.KindBlob, Repo: repo, Digest: d})
	}
}

// serveRoot runs the mirror of cfgPath in this process, as serve wires it,
// until the test ends or the returned func stops it.
func serveRoot(t *testing.T, cfgPath string) (*httptest.Server, func()) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(cfgPath, nil)
	must(t, err)
	log := gcLogger(config.Log{Level: "error"}, io.Discard)
	ix, err := openIndex(cfg, log)
	must(t, err)
	store, err := storage.NewFilesystem(cfg.Storage.Filesystem.RootDirectory)
	must(t, err)
	must(t, reconcile(ctx, ix, store, cfg, cfg.Storage.Delete.Enabled, log))
	h, _, stopCaches, err := newHandler(context.Background(), cfg, ix, store, log)
	must(t, err)
	srv := httptest.NewServer(h)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			srv.Close()
			stopCaches()
			_ = ix.Close()
		}
	}
	t.Cleanup(stop)
	return srv, stop
}

// upstreamRequests counts the manifest and blob requests regs served.
func upstreamRequests(regs ...*testregistry.Registry) (gets, all int64) {
	for _, r := range regs {
		for _, e := range []string{"manifests", "blobs"} {
			g := r.Count(http.MethodGet, e)
			gets += g
			all += g + r.Count(http.MethodHead, e)
		}
	}
	return gets, all
}

// pullAll pulls ref (an index or an image, with every platform) through the
// server at host, reading every blob; go-containerregistry verifies digests.
func pullAll(t *testing.T, host, ref string) {
	t.Helper()
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	must(t, err)
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	var images []ggcr.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		must(t, err)
		im, err := idx.IndexManifest()
		must(t, err)
		for _, d := range im.Manifests {
			img, err := idx.Image(d.Digest)
			must(t, err)
			images = append(images, img)
		}
	} else {
		img, err := desc.Image()
		must(t, err)
		images = append(images, img)
	}
	for _, img := range images {
		layers, err := img.Layers()
		must(t, err)
		for _, l := range layers {
			rc, err := l.Compressed()
			must(t, err)
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatalf("pull %s: layer: %v", ref, err)
			}
			if err := rc.Close(); err != nil {
				t.Fatalf("pull %s: layer: %v", ref, err)
			}
		}
		if _, err := img.RawConfigFile(); err != nil {
			t.Fatalf("pull %s: config: %v", ref, err)
		}
	}
}

// warmFixture is two upstreams: the default one with a two-platform index as
// team/app:v1, and b.example with one image as team/other:v2.
type warmFixture struct {
	reg, regB            *testregistry.Registry
	root, cfgPath        string
	idxM, idxB, imgM     map[digest.Digest]int64
	imgB                 map[digest.Digest]int64
	idxDigest, imgDigest digest.Digest
}

func newWarmFixture(t *testing.T) *warmFixture {
	f := &warmFixture{reg: testregistry.Start(t), regB: testregistry.Start(t), root: t.TempDir()}
	idx := pushIndex(t, f.reg, "team/app:v1", "linux/amd64", "linux/arm64")
	img := f.regB.PushRandom(t, "team/other:v2", 1200, 2)
	f.idxM, f.idxB = content(t, idx, nil)
	f.imgM, f.imgB = content(t, nil, img)
	h, err := idx.Digest()
	must(t, err)
	f.idxDigest = digest.Digest(h.String())
	h, err = img.Digest()
	must(t, err)
	f.imgDigest = digest.Digest(h.String())
	f.cfgPath = warmConfig(t, f.root, f.reg.URL, map[string]string{"b.example": f.regB.URL})
	return f
}

// checkAll checks both images are stored and indexed under the root.
func (f *warmFixture) checkAll(t *testing.T) {
	t.Helper()
	checkStored(t, f.root, "team/app", "v1", f.idxDigest, f.idxM, f.idxB)
	checkStored(t, f.root, "b.example/team/other", "v2", f.imgDigest, f.imgM, f.imgB)
}

// TestWarm warms a two-platform index of the default upstream and an image of
// another upstream into the storage root; a mirror serving the root afterwards
// answers every pull of them without asking an upstream.
func TestWarm(t *testing.T) {
	f := newWarmFixture(t)
	var stdout, stderr bytes.Buffer
	if code := warm([]string{"--progress", f.cfgPath, "team/app:v1", "b.example/team/other:v2"}, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, w := range []string{"team/app:v1 linux/amd64 ", "team/app:v1 linux/arm64 ", "b.example/team/other:v2 image ",
		"team/app:v1: done, 2 platforms", "warmed 2 images: 4 manifests, 10 blobs,"} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in the output:\n%s", w, out)
		}
	}
	f.checkAll(t)

	// Again, not on a terminal: all hits, one summary line.
	gets, _ := upstreamRequests(f.reg, f.regB)
	stdout.Reset()
	if code := warm([]string{f.cfgPath, "team/app:v1", "b.example/team/other:v2"}, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("second run: exit %d, stderr:\n%s", code, stderr.String())
	}
	if n := strings.Count(stdout.String(), "\n"); n != 1 || !strings.Contains(stdout.String(), "(0 B from upstream)") {
		t.Errorf("second run printed %d lines, want the summary only, all from the cache:\n%s", n, stdout.String())
	}
	if after, _ := upstreamRequests(f.reg, f.regB); after != gets {
		t.Errorf("second run made %d upstream GETs", after-gets)
	}

	srv, _ := serveRoot(t, f.cfgPath)
	host := strings.TrimPrefix(srv.URL, "http://")
	_, before := upstreamRequests(f.reg, f.regB)
	pullAll(t, host, "team/app@"+f.idxDigest.String())
	pullAll(t, host, "b.example/team/other@"+f.imgDigest.String())
	if _, after := upstreamRequests(f.reg, f.regB); after != before {
		t.Errorf("pulls after warm made %d upstream requests, want none", after-before)
	}
}

// TestWarmServer warms the same through a running mirror: its cache ends up
// with everything, and a second warm costs the upstreams nothing.
func TestWarmServer(t *testing.T) {
	f := newWarmFixture(t)
	srv, stop := serveRoot(t, f.cfgPath)
	var stdout, stderr bytes.Buffer
	args := []string{"--server", srv.URL, "team/app:v1", "b.example/team/other@" + f.imgDigest.String()}
	if code := warm(args, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "warmed 2 images: 4 manifests, 10 blobs,") {
		t.Errorf("output:\n%s", stdout.String())
	}
	gets, _ := upstreamRequests(f.reg, f.regB)
	if code := warm(args, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("second run: exit %d, stderr:\n%s", code, stderr.String())
	}
	if after, _ := upstreamRequests(f.reg, f.regB); after != gets {
		t.Errorf("second warm through the server made %d upstream GETs", after-gets)
	}
	// The busy root refuses a warm of its own, and says what to do instead.
	stderr.Reset()
	if code := warm([]string{f.cfgPath, "team/app:v1"}, &stdout, &stderr, nil); code != exitFail ||
		!strings.Contains(stderr.String(), "in use") || !strings.Contains(stderr.String(), "--server") {
		t.Errorf("warm of a root in use: exit %d, stderr %q", code, stderr.String())
	}
	stop()
	ctx := context.Background()
	store, err := storage.NewFilesystem(f.root)
	must(t, err)
	// The tag was pulled through the server; the second image by digest only.
	checkStored(t, f.root, "team/app", "v1", f.idxDigest, f.idxM, f.idxB)
	for d := range f.imgB {
		if !store.HasLayer(ctx, "b.example/team/other", d) {
			t.Errorf("blob %s not stored for b.example/team/other", d)
		}
	}
}

func TestWarmFails(t *testing.T) {
	f := newWarmFixture(t)
	tests := []struct {
		name     string
		args     []string // after the config file, unless noConfig
		noConfig bool
		wantCode int
		wantErr  []string
		wantOut  string
	}{
		{name: "an image the upstream lacks", args: []string{"team/app:v1", "team/missing:v1"}, wantCode: exitFail,
			wantErr: []string{"proxy warm: team/missing:v1: ", "MANIFEST_UNKNOWN"}, wantOut: "warmed 1 of 2 images: "},
		{name: "a digest the upstream lacks", args: []string{"team/app@sha256:" + strings.Repeat("0", 64)}, wantCode: exitFail,
			wantErr: []string{"team/app@sha256:000"}},
		{name: "unknown registry", args: []string{"nothere.example/x:1"}, wantCode: exitConfig,
			wantErr: []string{"nothere.example/x:1: no upstream is configured for registry nothere.example"}},
		{name: "invalid name", args: []string{"Team/App:v1"}, wantCode: exitConfig, wantErr: []string{`"Team/App:v1"`}},
		{name: "no image", wantCode: exitConfig, wantErr: []string{"usage: proxy warm"}},
		{name: "no configuration file", noConfig: true, args: []string{"/nonexistent.yml", "team/app:v1"}, wantCode: exitConfig,
			wantErr: []string{"cannot read configuration file"}},
		{name: "server and configuration", noConfig: true, args: []string{"--server", "http://127.0.0.1:1", "--config", f.cfgPath, "x:1"},
			wantCode: exitConfig, wantErr: []string{"not both"}},
		{name: "server URL without scheme", noConfig: true, args: []string{"--server", "127.0.0.1:1", "x:1"},
			wantCode: exitConfig, wantErr: []string{"want the proxy's URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if !tt.noConfig {
				args = append([]string{f.cfgPath}, args...)
			}
			var stdout, stderr bytes.Buffer
			code := warm(args, &stdout, &stderr, nil)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("no %q in stderr:\n%s", w, stderr.String())
				}
			}
			if !strings.HasPrefix(stdout.String(), tt.wantOut) {
				t.Errorf("stdout %q, want it to start with %q", stdout.String(), tt.wantOut)
			}
		})
	}
	checkStored(t, f.root, "team/app", "v1", f.idxDigest, f.idxM, f.idxB) // warmed beside the missing image
}

// TestWarmPlatformFails: a platform the upstream lost fails the image, naming
// the platform, and the other platform is warmed all the same.
func TestWarmPlatformFails(t *testing.T) {
	f := newWarmFixture(t)
	r, err := name.ParseReference(f.reg.Host+"/team/app:v1", name.Insecure)
	must(t, err)
	idx, err := remote.Index(r)
	must(t, err)
	im, err := idx.IndexManifest()
	must(t, err)
	lost := im.Manifests[1]
	f.reg.Delete(t, "team/app@"+lost.Digest.String())
	var stdout, stderr bytes.Buffer
	if code := warm([]string{f.cfgPath, "team/app:v1"}, &stdout, &stderr, nil); code != exitFail {
		t.Fatalf("exit %d, want %d", code, exitFail)
	}
	if want := "proxy warm: team/app:v1: platform linux/arm64 (" + lost.Digest.String(); !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	kept, err := idx.Image(im.Manifests[0].Digest)
	must(t, err)
	m, blobs := content(t, nil, kept)
	checkStored(t, f.root, "team/app", "v1", f.idxDigest, m, blobs)
}

// TestWarmServerVerifies: content a server hands out that does not match its
// digest fails the image.
func TestWarmServerVerifies(t *testing.T) {
	layer := []byte("the layer as it should be")
	cfgBlob := []byte(`{"architecture":"amd64","os":"linux"}`)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		digest.FromBytes(cfgBlob), len(cfgBlob), digest.FromBytes(layer), len(layer))
	tests := []struct {
		name       string
		badHeader  bool   // the manifest's Docker-Content-Digest lies
		layerBody  []byte // what the server sends for the layer
		wantExit   int
		wantStderr string
	}{
		{"all true", false, layer, exitOK, ""},
		{"layer bytes differ", false, bytes.ToUpper(layer), exitFail, "does not hash to its digest"},
		{"layer short", false, layer[:10], exitFail, "10 bytes, the manifest says"},
		{"manifest digest header lies", true, layer, exitFail, "body hashes to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case strings.HasSuffix(r.URL.Path, "/manifests/v1"):
					d := digest.FromString(manifest)
					if tt.badHeader {
						d = digest.FromString("another manifest")
					}
					w.Header().Set("Docker-Content-Digest", d.String())
					_, _ = io.WriteString(w, manifest)
				case strings.HasSuffix(r.URL.Path, "/blobs/"+digest.FromBytes(layer).String()):
					_, _ = w.Write(tt.layerBody)
				case strings.HasSuffix(r.URL.Path, "/blobs/"+digest.FromBytes(cfgBlob).String()):
					_, _ = w.Write(cfgBlob)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			if code := warm([]string{"--server", srv.URL, "team/app:v1"}, &stdout, &stderr, nil); code != tt.wantExit {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.wantExit, stderr.String())
			}
			if tt.wantStderr != "" && (!strings.Contains(stderr.String(), "team/app:v1: ") || !strings.Contains(stderr.String(), tt.wantStderr)) {
				t.Errorf("stderr %q, want the image named and %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestParseWarmImage(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		in, name, ref string
		bad           bool
	}{
		{in: "alpine", name: "alpine", ref: "latest"},
		{in: "library/alpine:3.20", name: "library/alpine", ref: "3.20"},
		{in: "ghcr.io/owner/app:v1", name: "ghcr.io/owner/app", ref: "v1"},
		{in: "localhost:5001/app@" + d, name: "localhost:5001/app", ref: d},
		{in: "app:v1@" + d, name: "app", ref: d},
		{in: "App:v1", bad: true},
		{in: "app:", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		img, err := parseWarmImage(tt.in)
		if (err != nil) != tt.bad || (!tt.bad && (img.name != tt.name || img.ref != tt.ref)) {
			t.Errorf("parseWarmImage(%q) = %+v, %v; want %q %q (error: %v)", tt.in, img, err, tt.name, tt.ref, tt.bad)
		}
	}
	if !slices.Contains(warmAccept, "application/vnd.oci.image.index.v1+json") {
		t.Error("warm does not accept OCI indexes")
	}
}
