package proxy

import (
	"regexp"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
)

// kind is the API endpoint a request addresses.
type kind int

const (
	kindInvalid kind = iota - 1 // a path that is no API endpoint
	kindBase
	kindCatalog
	kindManifest
	kindBlob
	kindUpload
	kindTags
	kindReferrers
	kindPeer // another replica's request for a fill (not a registry API endpoint)
)

// route is a parsed and validated registry API path.
type route struct {
	kind kind
	name string        // repository name, as the client wrote it
	ref  string        // manifest tag or digest
	dgst digest.Digest // blob or referrers subject, and ref when it is a digest
}

var tagRegexp = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// parseRoute maps a URL path to an endpoint and validates the name, tag and digest
// in it with the reference grammar, before anything touches disk or network. Names
// may contain the endpoint words ("a/manifests/b"): the endpoint is read from the
// end of the path.
func parseRoute(path string) (route, error) {
	rest, ok := strings.CutPrefix(path, "/v2")
	if !ok {
		return route{}, errNotFound
	}
	if rest == "" || rest == "/" {
		return route{kind: kindBase}, nil
	}
	rest, ok = strings.CutPrefix(rest, "/")
	if !ok {
		return route{}, errNotFound
	}
	if rest == "_catalog" {
		return route{kind: kindCatalog}, nil
	}
	c := strings.Split(rest, "/")
	n := len(c)
	var rt route
	var nameEnd int
	switch {
	case n >= 3 && c[n-2] == "uploads" && c[n-3] == "blobs":
		rt.kind, nameEnd = kindUpload, n-3
	case n >= 2 && c[n-1] == "uploads" && c[n-2] == "blobs":
		rt.kind, nameEnd = kindUpload, n-2
	case n >= 2 && c[n-2] == "manifests":
		rt.kind, nameEnd, rt.ref = kindManifest, n-2, c[n-1]
	case n >= 2 && c[n-2] == "blobs":
		rt.kind, nameEnd, rt.ref = kindBlob, n-2, c[n-1]
	case n >= 2 && c[n-2] == "referrers":
		rt.kind, nameEnd, rt.ref = kindReferrers, n-2, c[n-1]
	case n >= 2 && c[n-2] == "tags" && c[n-1] == "list":
		rt.kind, nameEnd = kindTags, n-2
	default:
		return route{}, errNotFound
	}
	rt.name = strings.Join(c[:nameEnd], "/")
	if err := validateName(rt.name); err != nil {
		return route{}, err
	}
	return rt, rt.validateRef()
}

func validateName(name string) error {
	if name == "" {
		return errcode.ErrorCodeNameInvalid.WithMessage("repository name is empty")
	}
	if _, err := reference.WithName(name); err != nil {
		return errcode.ErrorCodeNameInvalid.WithMessage("invalid repository name: " + err.Error()).WithDetail(name)
	}
	return nil
}

func (rt *route) validateRef() error {
	switch rt.kind {
	case kindManifest:
		if strings.Contains(rt.ref, ":") {
			d, err := digest.Parse(rt.ref)
			if err != nil {
				return errcode.ErrorCodeDigestInvalid.WithMessage("invalid digest: " + err.Error()).WithDetail(rt.ref)
			}
			rt.dgst = d
			return nil
		}
		if !tagRegexp.MatchString(rt.ref) {
			return errcode.ErrorCodeTagInvalid.WithMessage("invalid tag").WithDetail(rt.ref)
		}
	case kindBlob, kindReferrers:
		d, err := digest.Parse(rt.ref)
		if err != nil {
			return errcode.ErrorCodeDigestInvalid.WithMessage("invalid digest: " + err.Error()).WithDetail(rt.ref)
		}
		rt.dgst = d
	}
	return nil
}
