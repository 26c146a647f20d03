package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/storage"
	"github.com/ocimirror/proxy/ui"
)

// TestCatalogAdapter: the console's catalog over serve's real stores and
// index, after pulls through the cache (an image, a three-platform index of
// which one platform was pulled, a further upstream's image) and a push to a
// hosted repository: names, sources, tags, digests, media types, sizes,
// platforms, last pulls and expiries.
func TestCatalogAdapter(t *testing.T) {
	reg, other := testregistry.Start(t), testregistry.Start(t)
	img := reg.PushRandom(t, "team/app:v1", 1000, 2)
	reg.PushRandom(t, "team/app:v2", 1000, 1) // never pulled: not in the cache
	idx := threePlatforms(t, reg, "team/multi:v1")
	tool := other.PushRandom(t, "owner/tool:v1", 500, 1)
	f := startServe(t, reg.URL, "upstreams: [{host: other.test, remoteurl: "+other.URL+"}]\n"+
		"hosted: {namespaces: [dev]}\nauth: {htpasswd: {realm: test, path: {{htpasswd}}}}\n")
	host := strings.TrimPrefix(f.URL, "http://")

	before := time.Now()
	amd64 := childOf(t, idx, "amd64", "linux")
	for _, p := range []string{"/v2/team/app/manifests/v1", "/v2/team/multi/manifests/v1",
		"/v2/team/multi/manifests/" + amd64.Digest.String(), "/v2/other.test/owner/tool/manifests/v1"} {
		if st, _, _ := f.get(t, p); st != 200 {
			t.Fatalf("pull %s: %d", p, st)
		}
	}
	after := time.Now()
	pushed, _ := random.Image(300, 1)
	ref, _ := name.ParseReference(host+"/dev/app:v1", name.Insecure)
	if err := remote.Write(ref, pushed, remote.WithAuth(&authn.Basic{Username: consoleAdmin, Password: consolePass})); err != nil {
		t.Fatal(err)
	}
	hostedStore, err := storage.NewFilesystem(f.Cfg.Hosted.Root(f.Cfg.Storage.Filesystem.RootDirectory))
	if err != nil {
		t.Fatal(err)
	}
	cat := newCatalog(f.Cfg, f.Store, hostedStore, f.Index)
	ctx := context.Background()

	repos, err := cat.Repositories(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var list []string
	for _, r := range repos {
		list = append(list, r.Name+" "+r.Source+" "+map[bool]string{true: "hosted", false: "cached"}[r.Hosted])
		if !r.Hosted && (r.LastPull.Before(before) || r.LastPull.After(after)) {
			t.Errorf("%s: last pull %v, not during the pulls", r.Name, r.LastPull)
		}
		if r.Tags != 1 {
			t.Errorf("%s: %d tags, want 1", r.Name, r.Tags)
		}
	}
	want := "dev/app hosted hosted, other.test/owner/tool other.test cached, team/app " + reg.Host + " cached, team/multi " + reg.Host + " cached"
	if got := strings.Join(list, ", "); got != want {
		t.Errorf("repositories:\n %s\nwant\n %s", got, want)
	}

	cases := []struct {
		repo, source string
		want         ui.Tag
		cached       bool
	}{
		{"team/app", reg.Host, tagOf(t, "v1", img, nil), true},
		{"team/multi", reg.Host, indexTag(t, idx, amd64), true},
		{"other.test/owner/tool", "other.test", tagOf(t, "v1", tool, nil), true},
		{"dev/app", "hosted", tagOf(t, "v1", pushed, nil), false},
	}
	for _, c := range cases {
		d, err := cat.Repo(ctx, c.repo)
		if err != nil {
			t.Errorf("%s: %v", c.repo, err)
			continue
		}
		if d.Source != c.source || d.Hosted == c.cached || len(d.TagList) != 1 {
			t.Errorf("%s: source %q hosted %v, %d tags", c.repo, d.Source, d.Hosted, len(d.TagList))
			continue
		}
		got := d.TagList[0]
		if got.Name != c.want.Name || got.Digest != c.want.Digest || got.MediaType != c.want.MediaType ||
			got.Size != c.want.Size || strings.Join(got.Platforms, " ") != strings.Join(c.want.Platforms, " ") || got.Error != "" {
			t.Errorf("%s:\n got %+v\nwant %+v", c.repo, got, c.want)
		}
		switch {
		case c.cached && (got.LastPull.Before(before) || got.LastPull.After(after) || !got.Expires.Equal(got.LastPull.Add(24*time.Hour))):
			t.Errorf("%s: last pull %v, expires %v; want a pull now, expiring 24h later (proxy.ttl)", c.repo, got.LastPull, got.Expires)
		case !c.cached && (!got.LastPull.IsZero() || !got.Expires.IsZero()):
			t.Errorf("%s: a hosted tag with last pull %v, expiry %v", c.repo, got.LastPull, got.Expires)
		}
	}
	for _, missing := range []string{"team/none", "dev/none", "other.test/none"} {
		if _, err := cat.Repo(ctx, missing); !errors.Is(err, ui.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", missing, err)
		}
	}
}

// tagOf is the Tag the catalog should describe for an image: its digest,
// media type and the size of its manifest, config and layers.
func tagOf(t *testing.T, tag string, img v1.Image, platforms []string) ui.Tag {
	t.Helper()
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	mt, _ := img.MediaType()
	return ui.Tag{Name: tag, Digest: mustDigest(t, img), MediaType: string(mt), Size: size, Platforms: platforms}
}

// indexTag is the Tag of an index of which only pulled's manifest is stored:
// the index, pulled's image in full, the others by their descriptors.
func indexTag(t *testing.T, idx v1.ImageIndex, pulled v1.Descriptor) ui.Tag {
	t.Helper()
	raw, _ := idx.RawManifest()
	im, _ := idx.IndexManifest()
	mt, _ := idx.MediaType()
	tag := ui.Tag{Name: "v1", Digest: mustDigest(t, idx), MediaType: string(mt), Size: int64(len(raw))}
	for _, d := range im.Manifests {
		tag.Platforms = append(tag.Platforms, d.Platform.OS+"/"+d.Platform.Architecture)
		if d.Digest != pulled.Digest {
			tag.Size += d.Size
			continue
		}
		child, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		tag.Size += tagOf(t, "", child, nil).Size
	}
	return tag
}

// childOf is the descriptor of idx's manifest for os/arch.
func childOf(t *testing.T, idx v1.ImageIndex, arch, os string) v1.Descriptor {
	t.Helper()
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == os && d.Platform.Architecture == arch {
			return d
		}
	}
	t.Fatalf("no %s/%s in the index", os, arch)
	return v1.Descriptor{}
}
