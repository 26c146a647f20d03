package upstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// registryFixture is distribution's registry with one image pushed, behind a
// request log.
type registryFixture struct {
	srv *httptest.Server
	log *requestLog
	img testImage
}

func newRegistryFixture(t *testing.T) registryFixture {
	t.Helper()
	log := &requestLog{}
	srv := httptest.NewServer(recording(log, newRegistryHandler(t, false)))
	t.Cleanup(srv.Close)
	img := pusher{t: t, base: srv.URL}.image("team/app", "v1")
	return registryFixture{srv: srv, log: log, img: img}
}

func TestManifestAgainstDistribution(t *testing.T) {
	f := newRegistryFixture(t)
	c := newTestClient(t, f.srv.URL)
	tests := []struct {
		name, ref  string
		accept     []string
		wantType   string
		wantBody   []byte
		wantDigest digest.Digest
	}{
		{"manifest by tag", "v1", []string{mtOCIManifest}, mtOCIManifest, f.img.manifest, f.img.manifestDigest},
		{"manifest by digest", f.img.manifestDigest.String(), []string{mtOCIManifest}, mtOCIManifest, f.img.manifest, f.img.manifestDigest},
		{"index by tag", "v1-index", []string{mtOCIIndex, mtOCIManifest}, mtOCIIndex, f.img.index, f.img.indexDigest},
		{"index by digest, default accept", f.img.indexDigest.String(), nil, mtOCIIndex, f.img.index, f.img.indexDigest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			d, err := c.HeadManifest(ctx, "team/app", tt.ref, tt.accept)
			if err != nil {
				t.Fatalf("HeadManifest: %v", err)
			}
			want := Descriptor{MediaType: tt.wantType, Digest: tt.wantDigest, Size: int64(len(tt.wantBody))}
			if d != want {
				t.Errorf("HeadManifest = %+v, want %+v", d, want)
			}
			body, d, err := c.GetManifest(ctx, "team/app", tt.ref, tt.accept)
			if err != nil {
				t.Fatalf("GetManifest: %v", err)
			}
			if !bytes.Equal(body, tt.wantBody) || d != want {
				t.Errorf("GetManifest = %q %+v, want %q %+v", body, d, tt.wantBody, want)
			}
			reqs := f.log.all()
			last := reqs[len(reqs)-1]
			wantAccept := strings.Join(tt.accept, ", ")
			if tt.accept == nil {
				wantAccept = strings.Join(defaultManifestAccept(), ", ")
			}
			if got := last.Header.Get("Accept"); got != wantAccept {
				t.Errorf("Accept sent = %q, want %q", got, wantAccept)
			}
		})
	}
}

func TestBlobAgainstDistribution(t *testing.T) {
	f := newRegistryFixture(t)
	c := newTestClient(t, f.srv.URL)
	ctx := testContext(t)

	d, err := c.HeadBlob(ctx, "team/app", f.img.layerDigest)
	if err != nil {
		t.Fatalf("HeadBlob: %v", err)
	}
	if d.Digest != f.img.layerDigest || d.Size != int64(len(f.img.layer)) {
		t.Errorf("HeadBlob = %+v, want digest %s size %d", d, f.img.layerDigest, len(f.img.layer))
	}

	body, size, err := c.GetBlob(ctx, "team/app", f.img.layerDigest)
	if err != nil {
		t.Fatalf("GetBlob: %v", err)
	}
	defer body.Close()
	got, err := io.ReadAll(body)
	if err != nil {
		t.Fatalf("read blob: %v", err)
	}
	if !bytes.Equal(got, f.img.layer) || size != int64(len(f.img.layer)) {
		t.Errorf("GetBlob returned %d bytes (size %d), want the %d pushed", len(got), size, len(f.img.layer))
	}
	if ae := f.log.all()[f.log.count()-1].Header.Get("Accept-Encoding"); ae != "identity" {
		t.Errorf("GetBlob sent Accept-Encoding %q, want identity", ae)
	}
}

func TestNotFoundAgainstDistribution(t *testing.T) {
	f := newRegistryFixture(t)
	c := newTestClient(t, f.srv.URL)
	missing := digest.FromString("not pushed")
	tests := []struct {
		name     string
		call     func() error
		wantCode string // "" for HEAD, which has no body
	}{
		{"get manifest unknown tag", func() error {
			_, _, err := c.GetManifest(testContext(t), "team/app", "nope", nil)
			return err
		}, "MANIFEST_UNKNOWN"},
		{"get manifest unknown digest", func() error {
			_, _, err := c.GetManifest(testContext(t), "team/app", missing.String(), nil)
			return err
		}, "MANIFEST_UNKNOWN"},
		{"head manifest unknown tag", func() error {
			_, err := c.HeadManifest(testContext(t), "team/app", "nope", nil)
			return err
		}, ""},
		{"get blob unknown", func() error {
			_, _, err := c.GetBlob(testContext(t), "team/app", missing)
			return err
		}, "BLOB_UNKNOWN"},
		{"head blob unknown", func() error {
			_, err := c.HeadBlob(testContext(t), "team/app", missing)
			return err
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !IsNotFound(err) {
				t.Fatalf("err = %v, want a 404", err)
			}
			if IsUnavailable(err) {
				t.Errorf("IsUnavailable(%v) = true for a 404", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %v is not an *Error", err)
			}
			if tt.wantCode == "" {
				return
			}
			if len(e.Errors) == 0 || e.Errors[0].Code != tt.wantCode {
				t.Errorf("Errors = %+v, want first code %s", e.Errors, tt.wantCode)
			}
			if !strings.Contains(err.Error(), tt.wantCode) {
				t.Errorf("Error() = %q does not mention %s", err, tt.wantCode)
			}
		})
	}
}

func TestGetPassThroughAgainstDistribution(t *testing.T) {
	f := newRegistryFixture(t)
	c := newTestClient(t, f.srv.URL)
	ctx := testContext(t)

	resp, err := c.Get(ctx, "team/app", "tags/list", url.Values{"n": {"10"}},
		http.Header{"Authorization": {"Bearer client-token"}, "X-Test": {"1"}})
	if err != nil {
		t.Fatalf("Get tags/list: %v", err)
	}
	defer resp.Body.Close()
	var tags struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tags); err != nil {
		t.Fatal(err)
	}
	if tags.Name != "team/app" || strings.Join(tags.Tags, ",") != "v1,v1-index" {
		t.Errorf("tags = %+v", tags)
	}
	last := f.log.all()[f.log.count()-1]
	if last.URL.RawQuery != "n=10" || last.Header.Get("X-Test") != "1" {
		t.Errorf("request query %q, X-Test %q: want n=10 and 1", last.URL.RawQuery, last.Header.Get("X-Test"))
	}
	if a := last.Header.Get("Authorization"); a != "" {
		t.Errorf("caller's Authorization was forwarded: %q", a)
	}

	_, err = c.Get(ctx, "team/missing", "tags/list", nil, nil)
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusNotFound || len(e.Errors) == 0 || e.Errors[0].Code != "NAME_UNKNOWN" {
		t.Errorf("Get unknown repo: err = %v, want 404 NAME_UNKNOWN", err)
	}
}

func TestPingAgainstDistribution(t *testing.T) {
	plain := newRegistry(t)
	basic := httptest.NewServer(newRegistryHandler(t, true))
	t.Cleanup(basic.Close)
	for _, srv := range []*httptest.Server{plain, basic} {
		if err := newTestClient(t, srv.URL).Ping(testContext(t)); err != nil {
			t.Errorf("Ping %s: %v", srv.URL, err)
		}
	}
}

func TestBasicAuthAgainstDistribution(t *testing.T) {
	log := &requestLog{}
	srv := httptest.NewServer(recording(log, newRegistryHandler(t, true)))
	t.Cleanup(srv.Close)
	img := pusher{t: t, base: srv.URL, user: "mirror", pass: "s3cret"}.image("team/app", "v1")

	tests := []struct {
		name       string
		opts       []Option
		wantStatus int // 0: success
	}{
		{"right password", []Option{WithCredentials("mirror", "s3cret")}, 0},
		{"wrong password", []Option{WithCredentials("mirror", "wrong")}, http.StatusUnauthorized},
		{"no credentials", nil, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, srv.URL, tt.opts...)
			for i := range 3 {
				_, d, err := c.GetManifest(testContext(t), "team/app", "v1", nil)
				if tt.wantStatus == 0 {
					if err != nil || d.Digest != img.manifestDigest {
						t.Fatalf("GetManifest #%d = %+v, %v", i, d, err)
					}
					continue
				}
				var e *Error
				if !errors.As(err, &e) || e.StatusCode != tt.wantStatus {
					t.Fatalf("GetManifest #%d err = %v, want status %d", i, err, tt.wantStatus)
				}
				if strings.Contains(err.Error(), "wrong") || strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error leaks the password: %v", err)
				}
			}
		})
	}

	// After the first challenge the right credentials are sent up front.
	before := log.count()
	c := newTestClient(t, srv.URL, WithCredentials("mirror", "s3cret"))
	for range 3 {
		if _, err := c.HeadBlob(testContext(t), "team/app", img.layerDigest); err != nil {
			t.Fatal(err)
		}
	}
	if got := log.count() - before; got != 4 {
		t.Errorf("3 HEADs took %d requests, want 4 (one challenge, then Basic up front)", got)
	}
}
