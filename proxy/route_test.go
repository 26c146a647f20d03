package proxy

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	const d = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	tests := []struct {
		path       string
		kind       kind
		name, ref  string
		wantStatus int    // non-zero: an error with this status
		wantCode   string // and this errcode
	}{
		{path: "/v2/", kind: kindBase},
		{path: "/v2", kind: kindBase},
		{path: "/v2/_catalog", kind: kindCatalog},
		{path: "/v2/library/alpine/manifests/3.20", kind: kindManifest, name: "library/alpine", ref: "3.20"},
		{path: "/v2/alpine/manifests/" + d, kind: kindManifest, name: "alpine", ref: d},
		{path: "/v2/a/manifests/b/manifests/latest", kind: kindManifest, name: "a/manifests/b", ref: "latest"},
		{path: "/v2/a/b/c/blobs/" + d, kind: kindBlob, name: "a/b/c", ref: d},
		{path: "/v2/a/blobs/uploads/", kind: kindUpload, name: "a"},
		{path: "/v2/a/blobs/uploads/1234-abcd", kind: kindUpload, name: "a"},
		{path: "/v2/a/tags/list", kind: kindTags, name: "a"},
		{path: "/v2/a/referrers/" + d, kind: kindReferrers, name: "a", ref: d},
		{path: "/v2/localhost:5000/x/manifests/v1", kind: kindManifest, name: "localhost:5000/x", ref: "v1"},
		{path: "/v2/UPPER/manifests/latest", wantStatus: 400, wantCode: "NAME_INVALID"},
		{path: "/v2/a//b/manifests/latest", wantStatus: 400, wantCode: "NAME_INVALID"},
		{path: "/v2/../etc/manifests/latest", wantStatus: 400, wantCode: "NAME_INVALID"},
		{path: "/v2//manifests/latest", wantStatus: 400, wantCode: "NAME_INVALID"},
		{path: "/v2/" + strings.Repeat("a", 256) + "/manifests/latest", wantStatus: 400, wantCode: "NAME_INVALID"},
		{path: "/v2/a/manifests/.hidden", wantStatus: 400, wantCode: "TAG_INVALID"},
		{path: "/v2/a/manifests/" + strings.Repeat("t", 129), wantStatus: 400, wantCode: "TAG_INVALID"},
		{path: "/v2/a/manifests/sha256:abc", wantStatus: 400, wantCode: "DIGEST_INVALID"},
		{path: "/v2/a/blobs/latest", wantStatus: 400, wantCode: "DIGEST_INVALID"},
		{path: "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", wantStatus: 400, wantCode: "DIGEST_INVALID"},
		{path: "/v2/a/referrers/nope", wantStatus: 400, wantCode: "DIGEST_INVALID"},
		{path: "/v2/a/unknown/thing", wantStatus: 404, wantCode: "UNSUPPORTED"},
		{path: "/v1/search", wantStatus: 404, wantCode: "UNSUPPORTED"},
		{path: "/", wantStatus: 404, wantCode: "UNSUPPORTED"},
		{path: "/v2x", wantStatus: 404, wantCode: "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.path[:min(len(tt.path), 60)], func(t *testing.T) {
			rt, err := parseRoute(tt.path)
			if tt.wantStatus != 0 {
				if err == nil {
					t.Fatalf("parseRoute(%q) = %+v, want error %s", tt.path, rt, tt.wantCode)
				}
				he := classify(kindBase, err)
				if he.status != tt.wantStatus || he.err.Code.String() != tt.wantCode {
					t.Fatalf("error %v: status %d code %s, want %d %s", err, he.status, he.err.Code, tt.wantStatus, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseRoute(%q): %v", tt.path, err)
			}
			if rt.kind != tt.kind || rt.name != tt.name || (tt.ref != "" && rt.ref != tt.ref) {
				t.Fatalf("parseRoute(%q) = %+v, want kind %d name %q ref %q", tt.path, rt, tt.kind, tt.name, tt.ref)
			}
		})
	}
}

// FuzzParseRoute checks that no path panics, that every error maps to a 4xx
// errcode, and that an accepted name and reference satisfy the grammar.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/_catalog", "/v2/library/alpine/manifests/latest",
		"/v2/a/blobs/sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
		"/v2/a/blobs/uploads/x", "/v2/a/tags/list", "/v2/a/manifests/b/manifests/c", "/v2//", "/v2/../x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := parseRoute(path)
		if err != nil {
			he := classify(rt.kind, err)
			if he.status < 400 || he.status >= 500 {
				t.Fatalf("parseRoute(%q): status %d for %v", path, he.status, err)
			}
			return
		}
		if rt.kind == kindBase || rt.kind == kindCatalog {
			return
		}
		if validateName(rt.name) != nil {
			t.Fatalf("parseRoute(%q) accepted invalid name %q", path, rt.name)
		}
		if strings.Contains(rt.name, "..") || strings.HasPrefix(rt.name, "/") {
			t.Fatalf("parseRoute(%q) accepted a traversing name %q", path, rt.name)
		}
		if (rt.kind == kindBlob || rt.kind == kindReferrers) && rt.dgst.Validate() != nil {
			t.Fatalf("parseRoute(%q) accepted digest %q", path, rt.dgst)
		}
	})
}

func TestClassifyUnsupported(t *testing.T) {
	he := classify(kindManifest, errUnsupported)
	if he.status != http.StatusMethodNotAllowed || he.err.Code.String() != "UNSUPPORTED" {
		t.Fatalf("got %d %s", he.status, he.err.Code)
	}
	if !errors.Is(errUnsupported, errUnsupported) {
		t.Fatal("errors.Is")
	}
}
