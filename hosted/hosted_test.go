package hosted

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

type userCtxKey struct{}

// newTestRegistry serves a Registry on a temp root over loopback.
func newTestRegistry(t *testing.T, opts ...Option) (*Registry, string) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	opts = append([]Option{WithLogger(logrus.NewEntry(l)), WithUserFunc(func(ctx context.Context) string {
		u, _ := ctx.Value(userCtxKey{}).(string)
		return u
	})}, opts...)
	rg, err := New(context.Background(), t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, rg)
}

// serve serves rg over loopback as user alice.
func serve(t *testing.T, rg *Registry) (*Registry, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rg.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userCtxKey{}, "alice")))
	}))
	t.Cleanup(func() { srv.Close(); _ = rg.Close() })
	return rg, strings.TrimPrefix(srv.URL, "http://")
}

func pushRandom(t *testing.T, host, ref string) ggcrv1.Image {
	t.Helper()
	img, err := random.Image(1024, 3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return img
}

func do(t *testing.T, method, url, contentType string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestPushPullAndEvent(t *testing.T) {
	rg, host := newTestRegistry(t)
	events, cancel := rg.Subscribe(10)
	defer cancel()
	img := pushRandom(t, host, "dev/app:v1")

	ref, _ := name.ParseReference(host+"/dev/app:v1", name.Insecure)
	got, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Fatalf("pulled %s, pushed %s", d, want)
	}
	layers, _ := got.Layers()
	for _, l := range layers {
		rc, err := l.Compressed() // verifies the digest while reading
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			t.Fatalf("layer: %v", err)
		}
		rc.Close()
	}
	select {
	case e := <-events:
		if e.Action != "push" || e.Repo != "dev/app" || e.Tag != "v1" || e.Digest.String() != want.String() ||
			e.MediaType == "" || e.User != "alice" {
			t.Errorf("event = %+v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no push event")
	}
	repos, err := rg.Repositories(context.Background())
	if err != nil || len(repos) != 1 || repos[0] != "dev/app" {
		t.Errorf("Repositories = %v, %v", repos, err)
	}
}

func TestChunkedUploadAndMount(t *testing.T) {
	_, host := newTestRegistry(t)
	base := "http://" + host
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB in two chunks
	dgst := digest.FromBytes(data)

	resp := do(t, http.MethodPost, base+"/v2/dev/a/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("POST: %d %v", resp.StatusCode, resp.Header)
	}
	loc := resp.Header.Get("Location")
	for i, chunk := range [][]byte{data[:40000], data[40000:]} {
		start := i * 40000
		req, _ := http.NewRequest(http.MethodPatch, resolve(base, loc), bytes.NewReader(chunk))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", start, start+len(chunk)-1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("PATCH %d: %d", i, resp.StatusCode)
		}
		if want := fmt.Sprintf("0-%d", start+len(chunk)-1); resp.Header.Get("Range") != want {
			t.Errorf("PATCH %d Range = %q, want %q", i, resp.Header.Get("Range"), want)
		}
		loc = resp.Header.Get("Location")
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp = do(t, http.MethodPut, resolve(base, loc)+sep+"digest="+dgst.String(), "", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}

	// A mount into another hosted repository needs no upload.
	resp = do(t, http.MethodPost, base+"/v2/dev/b/blobs/uploads/?mount="+dgst.String()+"&from=dev/a", "", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("mount: %d", resp.StatusCode)
	}
	resp = do(t, http.MethodGet, base+"/v2/dev/b/blobs/"+dgst.String(), "", nil)
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("GET mounted blob: %d, %d bytes", resp.StatusCode, len(got))
	}
}

// uploadBlob pushes b monolithically: POST for a session, PUT with the body.
func uploadBlob(t *testing.T, base, repo string, b []byte) {
	t.Helper()
	resp := do(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %d", resp.StatusCode)
	}
	loc := resolve(base, resp.Header.Get("Location"))
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	resp = do(t, http.MethodPut, loc+sep+"digest="+digest.FromBytes(b).String(), "application/octet-stream", b)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT upload: %d", resp.StatusCode)
	}
}

func sha256hex(b []byte) string { return digest.FromBytes(b).Encoded() }

func resolve(base, loc string) string {
	if strings.HasPrefix(loc, "/") {
		return base + loc
	}
	return loc
}

func TestManifestValidation(t *testing.T) {
	_, host := newTestRegistry(t, WithMaxManifestSize(2048))
	base := "http://" + host + "/v2/dev/app/manifests/"
	missing := v1.Manifest{MediaType: v1.MediaTypeImageManifest,
		Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromString("nope"), Size: 4},
		Layers: []v1.Descriptor{}}
	missing.SchemaVersion = 2
	body, _ := json.Marshal(missing)
	big := append(body[:len(body)-1:len(body)-1], []byte(`,"annotations":{"x":"`+strings.Repeat("a", 4096)+`"}}`)...)
	cases := []struct {
		name   string
		body   []byte
		ct     string
		status int
		code   string
	}{
		{"unknown blob", body, v1.MediaTypeImageManifest, http.StatusBadRequest, "MANIFEST_BLOB_UNKNOWN"},
		{"not json", []byte("{"), v1.MediaTypeImageManifest, http.StatusBadRequest, "MANIFEST_INVALID"},
		{"too large", big, v1.MediaTypeImageManifest, http.StatusRequestEntityTooLarge, "MANIFEST_INVALID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := do(t, http.MethodPut, base+"v1", tc.ct, tc.body)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.code) {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, b, tc.status, tc.code)
			}
		})
	}
}

func TestReferrersAndSubject(t *testing.T) {
	_, host := newTestRegistry(t)
	img := pushRandom(t, host, "dev/app:v1")
	subject, _ := img.Digest()
	raw, _ := img.RawManifest()
	mt, _ := img.MediaType()

	// An artifact that refers to the image: empty config, one blob.
	base := "http://" + host + "/v2/dev/app/"
	blob := []byte("signature")
	empty := []byte("{}")
	for _, b := range [][]byte{blob, empty} {
		uploadBlob(t, "http://"+host, "dev/app", b)
	}
	art := v1.Manifest{MediaType: v1.MediaTypeImageManifest, ArtifactType: "application/vnd.example.sig",
		Config:  v1.DescriptorEmptyJSON,
		Layers:  []v1.Descriptor{{MediaType: "application/octet-stream", Digest: digest.FromBytes(blob), Size: int64(len(blob))}},
		Subject: &v1.Descriptor{MediaType: string(mt), Digest: digest.Digest(subject.String()), Size: int64(len(raw))}}
	art.SchemaVersion = 2
	body, _ := json.Marshal(art)
	artDigest := digest.FromBytes(body)
	resp := do(t, http.MethodPut, base+"manifests/"+artDigest.String(), v1.MediaTypeImageManifest, body)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("OCI-Subject") != subject.String() {
		t.Fatalf("PUT artifact: %d, OCI-Subject %q", resp.StatusCode, resp.Header.Get("OCI-Subject"))
	}

	cases := []struct {
		query   string
		want    int
		filters string
	}{
		{"", 1, ""},
		{"?artifactType=application/vnd.example.sig", 1, "artifactType"},
		{"?artifactType=application/other", 0, "artifactType"},
	}
	for _, tc := range cases {
		resp := do(t, http.MethodGet, base+"referrers/"+subject.String()+tc.query, "", nil)
		var idx v1.Index
		if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("referrers%s: %d %v", tc.query, resp.StatusCode, err)
		}
		if len(idx.Manifests) != tc.want || resp.Header.Get("OCI-Filters-Applied") != tc.filters {
			t.Errorf("referrers%s: %d manifests, filters %q; want %d, %q", tc.query, len(idx.Manifests),
				resp.Header.Get("OCI-Filters-Applied"), tc.want, tc.filters)
		}
		if tc.want == 1 && (idx.Manifests[0].Digest != artDigest || idx.Manifests[0].ArtifactType != "application/vnd.example.sig") {
			t.Errorf("referrer = %+v", idx.Manifests[0])
		}
	}
	// An unknown subject has an empty list.
	resp = do(t, http.MethodGet, base+"referrers/"+digest.FromString("x").String(), "", nil)
	var idx v1.Index
	if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil || resp.StatusCode != http.StatusOK || len(idx.Manifests) != 0 {
		t.Errorf("unknown subject: %d %v %d", resp.StatusCode, err, len(idx.Manifests))
	}
}

func TestDelete(t *testing.T) {
	for _, enabled := range []bool{true, false} {
		t.Run(fmt.Sprint("delete=", enabled), func(t *testing.T) {
			rg, host := newTestRegistry(t, WithDelete(enabled))
			events, cancel := rg.Subscribe(10)
			defer cancel()
			img := pushRandom(t, host, "dev/app:v1")
			<-events
			d, _ := img.Digest()
			resp := do(t, http.MethodDelete, "http://"+host+"/v2/dev/app/manifests/"+d.String(), "", nil)
			want := http.StatusMethodNotAllowed
			if enabled {
				want = http.StatusAccepted
			}
			if resp.StatusCode != want {
				t.Fatalf("DELETE: %d, want %d", resp.StatusCode, want)
			}
			resp = do(t, http.MethodGet, "http://"+host+"/v2/dev/app/manifests/"+d.String(), "", nil)
			if gone := resp.StatusCode == http.StatusNotFound; gone != enabled {
				t.Errorf("GET after DELETE: %d", resp.StatusCode)
			}
			select {
			case e := <-events:
				if !enabled || e.Action != "delete" || e.Digest.String() != d.String() {
					t.Errorf("event %+v", e)
				}
			default:
				if enabled {
					t.Error("no delete event")
				}
			}
		})
	}
}
