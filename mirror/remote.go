package mirror

import (
	"context"
	"fmt"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Tags lists e's repository's tags, every page of them.
func (c *Copier) Tags(ctx context.Context, e Endpoint) ([]string, error) {
	repo, err := e.repo()
	if err != nil {
		return nil, err
	}
	p, err := c.puller(e)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo.Name(), err)
	}
	tags, err := p.List(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo.Name(), redact(err))
	}
	return tags, nil
}

// Head resolves ref (a tag or a digest) in e's repository to its descriptor
// (digest, size, media type) with one HEAD request, which Docker Hub does not
// count as a pull: a poll tells whether a tag moved without downloading
// anything. Calls for the same Endpoint with the same Auth pointer share one
// token for a few minutes.
func (c *Copier) Head(ctx context.Context, e Endpoint, ref string) (v1.Descriptor, error) {
	r, err := e.ref(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	p, err := c.puller(e)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("head %s: %w", r, err)
	}
	d, err := p.Head(ctx, r)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("head %s: %w", r, redact(err))
	}
	return *d, nil
}

// Ping checks that e's registry is reachable and accepts e's credentials (DTR's
// "Connect"): it fetches a token for pulling from the repository when the
// registry asks for one, and then GET /v2/ with the credentials. It does not
// check that the repository exists (a push mirror's may not yet); Tags does.
// The error is the registry's (a 401 with its errcode and message, a TLS or
// connection error), fit to show a user.
func (c *Copier) Ping(ctx context.Context, e Endpoint) error {
	repo, err := e.repo()
	if err != nil {
		return err
	}
	rt, err := c.transport(e)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", repo.RegistryStr(), err)
	}
	tr, err := transport.NewWithContext(ctx, repo.Registry, e.auth(), rt, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return fmt.Errorf("connect to %s: %w", repo.RegistryStr(), redact(err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, repo.Scheme()+"://"+repo.RegistryStr()+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", repo.RegistryStr(), redact(err))
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return fmt.Errorf("connect to %s: %w", repo.RegistryStr(), err)
	}
	return nil
}
