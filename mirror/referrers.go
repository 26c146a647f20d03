package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Referrer discovery at the source. go-containerregistry's remote.Referrers asks
// the referrers API and, when the registry has none, GETs the sha256-<hex> tag,
// for every subject. Docker Hub counts manifest GETs against its pull quota, so
// this asks the API once per copy and, when the source has none, HEADs the tag
// (free) and GETs only the indexes that exist.

// maxReferrersList bounds a referrers API answer.
const maxReferrersList = 4 << 20

// apiState is what a copy learned about its source's referrers API.
type apiState int

const (
	apiUnknown apiState = iota
	apiYes
	apiNo
)

// referrers returns the descriptors of the manifests that refer to subject at
// the source: from the referrers API, or from the sha256-<hex> tag schema.
func (r *run) referrers(ctx context.Context, subject v1.Hash) ([]v1.Descriptor, error) {
	if r.api != apiNo {
		list, ok, err := r.referrersAPI(ctx, subject)
		if err != nil {
			return nil, err
		}
		if ok {
			r.api = apiYes
			return list, nil
		}
		if r.api == apiUnknown {
			r.api = apiNo
		}
	}
	tag := r.srcRepo.Tag(subject.Algorithm + "-" + subject.Hex)
	d, err := r.puller.Head(ctx, tag)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	desc, err := r.puller.Get(ctx, r.srcRepo.Digest(d.Digest.String()))
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		return nil, fmt.Errorf("tag %s is a %s, not a referrers index", tag.TagStr(), desc.MediaType)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("tag %s: %w", tag.TagStr(), err)
	}
	return im.Manifests, nil
}

// referrersAPI asks the source's referrers API; ok is false when the source
// answers like a registry without one (404, 400, 406, or not an OCI index).
func (r *run) referrersAPI(ctx context.Context, subject v1.Hash) (list []v1.Descriptor, ok bool, err error) {
	if r.srcClient == nil {
		rt, err := r.c.transport(r.src)
		if err != nil {
			return nil, false, err
		}
		rt = transport.NewRetry(rt, transport.WithRetryBackoff(r.c.backoff), transport.WithRetryPredicate(retryable(ctx)),
			transport.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
				http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout))
		tr, err := transport.NewWithContext(ctx, r.srcRepo.Registry, r.src.auth(), rt, []string{r.srcRepo.Scope(transport.PullScope)})
		if err != nil {
			return nil, false, err
		}
		r.srcClient = &http.Client{Transport: tr}
	}
	u := url.URL{Scheme: r.srcRepo.Scheme(), Host: r.srcRepo.RegistryStr(), Path: "/v2/" + r.srcRepo.RepositoryStr() + "/referrers/" + subject.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Accept", string(types.OCIImageIndex))
	resp, err := r.srcClient.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK, http.StatusNotFound, http.StatusBadRequest, http.StatusNotAcceptable); err != nil {
		return nil, false, err
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || mt != string(types.OCIImageIndex) {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, false, nil
	}
	var im v1.IndexManifest
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReferrersList)).Decode(&im); err != nil {
		return nil, false, fmt.Errorf("referrers API answer: %w", err)
	}
	return im.Manifests, true, nil
}
