// Package mirror copies images between registries: every platform of an index
// with its digest kept, the referrers (signatures, SBOMs) of each manifest, blobs
// skipped when the destination has them and mounted when it is the same registry.
// `proxy mirror` and the poll and push mirroring jobs run on its Copier.
//
// The registry protocol is go-containerregistry's (pkg/v1/remote): it walks the
// manifests, HEADs and mounts blobs, streams them from source to destination and
// retries. This package adds what a mirror needs on top: one rate-limit budget per
// registry host shared by every copy, referrer discovery, platform filters, counts
// of what was copied, skipped and mounted, and errors that keep the registry's
// errcode.
package mirror

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Endpoint is one side of a copy: a registry repository and how to reach it.
//
// An Endpoint prints as its repository only (String, GoString), so that logging
// one with %v or %#v never shows its credentials.
type Endpoint struct {
	Repo name.Repository     // registry and repository, e.g. registry-1.docker.io/library/alpine
	Auth authn.Authenticator // nil: anonymous; authn.Resolve with a Keychain gives one from docker's config.json

	// Insecure allows plain HTTP to the registry (https is still tried first).
	// Loopback and RFC 1918 addresses are allowed plain HTTP without it, as
	// go-containerregistry does.
	Insecure bool
	// CA holds PEM certificates trusted for this registry besides the system
	// roots (DTR's remoteCA).
	CA []byte
	// SkipTLSVerify accepts any certificate. For test setups only.
	SkipTLSVerify bool
	// Transport, when set, carries every request to this endpoint instead of
	// the network (the hosted registry of this server, in process); the TLS
	// settings and the rate-limit budget do not apply to it.
	Transport http.RoundTripper
}

// String returns the repository, never the credentials.
func (e Endpoint) String() string { return e.Repo.Name() }

// GoString returns the repository, never the credentials.
func (e Endpoint) GoString() string { return "mirror.Endpoint{" + e.Repo.Name() + "}" }

// repo returns the repository with the insecure flag applied.
func (e Endpoint) repo() (name.Repository, error) {
	if e.Repo.RepositoryStr() == "" {
		return name.Repository{}, errors.New("endpoint has no repository")
	}
	if !e.Insecure {
		return e.Repo, nil
	}
	return name.NewRepository(e.Repo.Name(), name.Insecure)
}

// auth returns the authenticator, anonymous when none is set.
func (e Endpoint) auth() authn.Authenticator {
	if e.Auth == nil {
		return authn.Anonymous
	}
	return e.Auth
}

// ref parses ref, a tag or a digest (sha256:... or @sha256:...), in the
// endpoint's repository.
func (e Endpoint) ref(ref string) (name.Reference, error) {
	repo, err := e.repo()
	if err != nil {
		return nil, err
	}
	ref = strings.TrimPrefix(ref, "@")
	if ref == "" {
		return nil, errors.New("empty reference: give a tag or a digest")
	}
	opts := []name.Option{name.WeakValidation}
	if e.Insecure {
		opts = append(opts, name.Insecure)
	}
	if strings.Contains(ref, ":") {
		d, err := name.NewDigest(repo.Name()+"@"+ref, opts...)
		if err != nil {
			return nil, fmt.Errorf("reference %q: %w", ref, err)
		}
		return d, nil
	}
	t, err := name.NewTag(repo.Name()+":"+ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("reference %q: %w", ref, err)
	}
	return t, nil
}

// certPool returns the system roots plus the endpoint's CA, nil when it has none.
func (e Endpoint) certPool() (*x509.CertPool, error) {
	if len(e.CA) == 0 {
		return nil, nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(e.CA) {
		return nil, fmt.Errorf("CA for %s: no PEM certificate in it", e.Repo.RegistryStr())
	}
	return pool, nil
}

// tlsKey names the TLS settings, so that endpoints with equal settings share
// one HTTP transport and its connections.
func (e Endpoint) tlsKey() string {
	if len(e.CA) == 0 && !e.SkipTLSVerify {
		return ""
	}
	sum := sha256.Sum256(e.CA)
	return fmt.Sprintf("%s/%t", hex.EncodeToString(sum[:]), e.SkipTLSVerify)
}
