package proxy

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestReferrersPassThrough: distribution's registry has no referrers API, so a
// small upstream serves one; the mirror passes it through and applies the
// artifactType filter when the upstream did not.
func TestReferrersPassThrough(t *testing.T) {
	subject := digest.FromString("subject")
	index := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: []v1.Descriptor{
		{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("sig"), Size: 10, ArtifactType: "application/vnd.example.sig"},
		{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("sbom"), Size: 20, ArtifactType: "application/spdx+json"},
	}}
	index.SchemaVersion = 2
	for _, upstreamFilters := range []bool{false, true} {
		up := liar(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/v2/app/referrers/"+subject.String() {
				http.NotFound(w, r)
				return
			}
			idx := index
			if at := r.URL.Query().Get("artifactType"); upstreamFilters && at != "" {
				idx.Manifests = []v1.Descriptor{index.Manifests[1]}
				w.Header().Set("OCI-Filters-Applied", "artifactType")
			}
			w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
			_ = json.NewEncoder(w).Encode(idx)
		})
		m := startMirror(t, up.URL)
		url := m.URL + "/v2/app/referrers/" + subject.String()

		code, hdr, body := get(t, "GET", url, nil)
		var got v1.Index
		if err := json.Unmarshal(body, &got); code != 200 || err != nil || len(got.Manifests) != 2 ||
			hdr.Get("Content-Type") != v1.MediaTypeImageIndex {
			t.Fatalf("referrers: %d %q %s", code, hdr.Get("Content-Type"), body)
		}
		code, hdr, body = get(t, "GET", url+"?artifactType=application/spdx%2Bjson", nil)
		got = v1.Index{}
		if err := json.Unmarshal(body, &got); code != 200 || err != nil || len(got.Manifests) != 1 ||
			got.Manifests[0].ArtifactType != "application/spdx+json" || hdr.Get("OCI-Filters-Applied") != "artifactType" {
			t.Fatalf("upstreamFilters=%v filtered referrers: %d %v %s", upstreamFilters, code, hdr, body)
		}
	}
}
