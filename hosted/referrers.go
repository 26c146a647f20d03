package hosted

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/ocimirror/proxy/storage"
)

// summary is what the referrers API needs of one manifest. Manifests are
// content-addressed, so a summary never goes stale.
type summary struct {
	subject    digest.Digest
	descriptor v1.Descriptor
}

// summaryCache remembers manifest summaries by digest, so a referrers request
// reads each manifest of a repository once in the process's life. Bounded: at
// the limit it starts over.
type summaryCache struct {
	mu sync.Mutex
	m  map[digest.Digest]summary
}

const maxSummaries = 100_000

func (c *summaryCache) get(d digest.Digest) (summary, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[d]
	return s, ok
}

func (c *summaryCache) put(d digest.Digest, s summary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxSummaries {
		c.m = map[digest.Digest]summary{}
	}
	c.m[d] = s
}

// serveReferrers answers GET /v2/<name>/referrers/<digest>: an image index of
// the repository's manifests whose subject is that digest, optionally filtered
// by artifactType. An unknown subject has no referrers: an empty index, 200.
func (rg *Registry) serveReferrers(w http.ResponseWriter, r *http.Request, name, ref string) {
	subject, err := digest.Parse(ref)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, errcode.ErrorCodeDigestInvalid.WithMessage("invalid digest").WithDetail(ref))
		return
	}
	artifactType := r.URL.Query().Get("artifactType")
	descs, err := rg.referrers(r, name, subject, artifactType)
	if err != nil {
		rg.log.WithError(err).WithField("repo", name).Error("listing referrers")
		writeError(w, r, http.StatusInternalServerError, errcode.ErrorCodeUnknown.WithMessage("listing referrers failed"))
		return
	}
	body, _ := json.Marshal(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: descs,
	})
	if artifactType != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(body)
	}
}

func (rg *Registry) referrers(r *http.Request, name string, subject digest.Digest, artifactType string) ([]v1.Descriptor, error) {
	ctx := r.Context()
	dgsts, err := rg.store.Manifests(ctx, name)
	if err == storage.ErrNotFound {
		return []v1.Descriptor{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []v1.Descriptor{}
	for _, d := range dgsts {
		s, ok := rg.summaries.get(d)
		if !ok {
			body, err := rg.store.GetManifest(ctx, name, d)
			if err != nil {
				continue // deleted meanwhile
			}
			s = summarize(d, body)
			rg.summaries.put(d, s)
		}
		if s.subject != subject || (artifactType != "" && s.descriptor.ArtifactType != artifactType) {
			continue
		}
		out = append(out, s.descriptor)
	}
	return out, nil
}

// summarize reads the subject and the referrers descriptor of a manifest. The
// artifact type is the manifest's artifactType, else its config's media type.
func summarize(d digest.Digest, body []byte) summary {
	var m struct {
		MediaType    string            `json:"mediaType"`
		ArtifactType string            `json:"artifactType"`
		Config       *v1.Descriptor    `json:"config"`
		Subject      *v1.Descriptor    `json:"subject"`
		Annotations  map[string]string `json:"annotations"`
	}
	if json.Unmarshal(body, &m) != nil || m.Subject == nil {
		return summary{}
	}
	at := m.ArtifactType
	if at == "" && m.Config != nil {
		at = m.Config.MediaType
	}
	return summary{subject: m.Subject.Digest, descriptor: v1.Descriptor{
		MediaType:    storage.ManifestMediaType(body),
		Digest:       d,
		Size:         int64(len(body)),
		ArtifactType: at,
		Annotations:  m.Annotations,
	}}
}
