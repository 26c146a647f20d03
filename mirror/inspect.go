package mirror

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Licenses returns the license expression of the image ref in e: the
// org.opencontainers.image.licenses annotation of its manifest (or index),
// else the label of its config; for an index without the annotation, that of
// its first image. "" when it declares none.
func (c *Copier) Licenses(ctx context.Context, e Endpoint, ref string) (string, error) {
	r, err := e.ref(ref)
	if err != nil {
		return "", err
	}
	p, err := c.puller(e)
	if err != nil {
		return "", err
	}
	desc, err := p.Get(ctx, r)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", r, redact(err))
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return "", err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return "", err
		}
		if l := m.Annotations[LicenseKey]; l != "" || len(m.Manifests) == 0 {
			return l, nil
		}
		return c.Licenses(ctx, e, m.Manifests[0].Digest.String())
	}
	img, err := desc.Image()
	if err != nil {
		return "", err
	}
	m, err := img.Manifest()
	if err != nil {
		return "", err
	}
	if l := m.Annotations[LicenseKey]; l != "" {
		return l, nil
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", fmt.Errorf("config of %s: %w", r, redact(err))
	}
	return cfg.Config.Labels[LicenseKey], nil
}

// Platforms lists the platforms of the index ref in e.
func (c *Copier) Platforms(ctx context.Context, e Endpoint, ref string) ([]v1.Platform, error) {
	r, err := e.ref(ref)
	if err != nil {
		return nil, err
	}
	p, err := c.puller(e)
	if err != nil {
		return nil, err
	}
	desc, err := p.Get(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", r, redact(err))
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []v1.Platform
	for _, d := range m.Manifests {
		if d.Platform != nil {
			out = append(out, *d.Platform)
		}
	}
	return out, nil
}
