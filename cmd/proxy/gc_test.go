package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/units"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// gcImage is one stored image: a tag, its manifest and its layers.
type gcImage struct {
	repo, tag string
	manifest  []byte
	layers    [][]byte
}

// The fixture: two images sharing a layer, every entry last pulled two days ago.
var (
	sharedLayer = bytes.Repeat([]byte("s"), 3<<10)
	appLayer    = bytes.Repeat([]byte("a"), 2<<10)
	alpine      = gcImage{"library/alpine", "3.20", []byte(`{"schemaVersion":2,"name":"alpine"}`), [][]byte{sharedLayer}}
	app         = gcImage{"team/app", "v1", []byte(`{"schemaVersion":2,"name":"app"}`), [][]byte{sharedLayer, appLayer}}
)

// gcRoot stores the images in a new storage root and records them in its index
// as last pulled two days ago. It returns the root.
func gcRoot(t *testing.T, images ...gcImage) string {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	store, err := storage.NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range images {
		for _, l := range img.layers {
			commitBlob(t, store, l)
			if err := store.LinkLayer(ctx, img.repo, digest.FromBytes(l)); err != nil {
				t.Fatal(err)
			}
		}
		md := digest.FromBytes(img.manifest)
		if err := store.PutManifest(ctx, img.repo, md, img.manifest); err != nil {
			t.Fatal(err)
		}
		if err := store.Tag(ctx, img.repo, img.tag, md); err != nil {
			t.Fatal(err)
		}
	}
	ix := openTestIndex(t, root)
	defer ix.Close()
	old := time.Now().Add(-48 * time.Hour)
	err = store.Walk(ctx, func(it storage.Item) {
		ix.Record(scheduler.Entry{Key: itemKey(it), Size: it.Size, LastAccess: old})
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func commitBlob(t *testing.T, store *storage.Store, data []byte) {
	t.Helper()
	f, err := store.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := store.CommitBlob(context.Background(), f, digest.FromBytes(data)); err != nil {
		t.Fatal(err)
	}
}

func openTestIndex(t *testing.T, root string) *scheduler.Index {
	t.Helper()
	ix, err := scheduler.Open(filepath.Join(root, "_proxy", "scheduler.db"), scheduler.WithLogger(gcLogger(config.Log{Level: "error"}, os.Stderr)))
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

// gcConfig writes a configuration for root and returns its path.
func gcConfig(t *testing.T, root string, deleteEnabled bool, pins ...string) string {
	t.Helper()
	doc := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %q}\n  delete: {enabled: %v}\n"+
		"proxy:\n  ttl: 1h\n  pin: [%s]\n", root, deleteEnabled, strings.Join(pins, ", "))
	path := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// stored lists what the root holds on disk, whether the index has an entry for
// each item, and the index's size. It opens the index unless ix is given.
func stored(t *testing.T, root string, ix *scheduler.Index) []string {
	t.Helper()
	store, err := storage.NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	if ix == nil {
		ix = openTestIndex(t, root)
		defer ix.Close()
	}
	var out []string
	err = store.Walk(context.Background(), func(it storage.Item) {
		_, indexed := ix.Get(itemKey(it))
		out = append(out, fmt.Sprintf("%s indexed=%v", itemKey(it), indexed))
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return append(out, fmt.Sprintf("index: %d entries, %d bytes", ix.Len(), ix.TotalSize()))
}

// lines returns out's lines with their runs of spaces made one.
func lines(out string) []string {
	var ls []string
	for _, l := range strings.Split(out, "\n") {
		ls = append(ls, strings.Join(strings.Fields(l), " "))
	}
	return ls
}

func TestGC(t *testing.T) {
	size := func(bs ...[]byte) int64 {
		var n int64
		for _, b := range bs {
			n += int64(len(b))
		}
		return n
	}
	all := size(alpine.manifest, app.manifest, sharedLayer, appLayer)
	tests := []struct {
		name    string
		dryRun  bool
		pins    []string
		want    []string // lines of the report
		deleted bool     // whether team/app is gone afterwards
		alpine  bool     // whether library/alpine is still there afterwards
	}{
		{
			name: "dry run", dryRun: true,
			want: []string{
				"would free (dry run, nothing deleted):",
				"tags 2", "manifests 2 " + units.Bytes(size(alpine.manifest, app.manifest)),
				"blob links 3", "blobs 2 5.0 KiB", "total " + units.Bytes(all),
				"cache size: " + units.Bytes(all) + " -> 0 B",
			},
			alpine: true,
		},
		{
			name: "evicts",
			want: []string{
				"freed:", "tags 2", "manifests 2 " + units.Bytes(size(alpine.manifest, app.manifest)),
				"blob links 3", "blobs 2 5.0 KiB", "total " + units.Bytes(all),
				"cache size: " + units.Bytes(all) + " -> 0 B",
			},
			deleted: true,
		},
		{
			name: "pinned repository stays", pins: []string{"library/*"},
			want: []string{
				"freed:", "tags 1", "manifests 1 " + units.Bytes(size(app.manifest)),
				"blob links 2", "blobs 1 2.0 KiB", "total " + units.Bytes(size(app.manifest, appLayer)),
				"cache size: " + units.Bytes(all) + " -> " + units.Bytes(size(alpine.manifest, sharedLayer)),
				"kept though due: 3 pinned",
			},
			deleted: true, alpine: true,
		},
		{
			name: "pinned tag keeps its repository's links", dryRun: true, pins: []string{"'library/alpine:3.*'"},
			want: []string{
				"tags 1", "manifests 1 " + units.Bytes(size(app.manifest)), "blob links 2", "blobs 1 2.0 KiB",
				"kept though due: 3 pinned",
			},
			alpine: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := gcRoot(t, alpine, app)
			before := stored(t, root, nil)
			args := []string{gcConfig(t, root, true, tt.pins...)}
			if tt.dryRun {
				args = append(args, "--dry-run") // after the file: flags go anywhere
			}
			var stdout, stderr bytes.Buffer
			if code := gc(args, &stdout, &stderr, nil); code != exitOK {
				t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
			}
			got := lines(stdout.String())
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("no line %q in the report:\n%s", w, stdout.String())
				}
			}
			after := stored(t, root, nil)
			if tt.dryRun && !slices.Equal(before, after) {
				t.Errorf("a dry run changed the store or index:\nbefore %q\nafter  %q", before, after)
			}
			checkRepo(t, root, app, !tt.deleted)
			checkRepo(t, root, alpine, tt.alpine)
		})
	}
}

// checkRepo checks that img's tag, manifest and layers are all on disk and in
// the index, or all gone from both.
func checkRepo(t *testing.T, root string, img gcImage, want bool) {
	t.Helper()
	ctx := context.Background()
	store, err := storage.NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	ix := openTestIndex(t, root)
	defer ix.Close()
	md := digest.FromBytes(img.manifest)
	keys := []scheduler.Key{{Kind: scheduler.KindTag, Repo: img.repo, Tag: img.tag}, {Kind: scheduler.KindManifest, Repo: img.repo, Digest: md}}
	_, err = store.ResolveTag(ctx, img.repo, img.tag)
	onDisk := []bool{err == nil}
	_, err = store.GetManifest(ctx, img.repo, md)
	onDisk = append(onDisk, err == nil)
	for _, l := range img.layers {
		keys = append(keys, scheduler.Key{Kind: scheduler.KindBlob, Repo: img.repo, Digest: digest.FromBytes(l)})
		onDisk = append(onDisk, store.HasLayer(ctx, img.repo, digest.FromBytes(l)))
	}
	for i, k := range keys {
		if _, inIndex := ix.Get(k); inIndex != want || onDisk[i] != want {
			t.Errorf("%s: in the index %v, on disk %v; want %v", k, inIndex, onDisk[i], want)
		}
	}
}

func TestGCRefuses(t *testing.T) {
	tests := []struct {
		name     string
		delete   bool
		args     []string
		lock     bool // another Index holds the root, as proxy serve does
		wantCode int
		wantErr  string
	}{
		{"delete disabled", false, nil, false, exitConfig, "storage.delete.enabled"},
		{"in use", true, nil, true, exitFail, "in use"},
		{"in use, dry run", true, []string{"--dry-run"}, true, exitFail, "in use"},
		{"two files", true, []string{"other.yml"}, false, exitConfig, "one configuration file"},
		{"unknown flag", true, []string{"--force"}, false, exitConfig, "-force"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := gcRoot(t, app)
			var held *scheduler.Index
			if tt.lock {
				held = openTestIndex(t, root)
				defer held.Close()
			}
			before := stored(t, root, held)
			var stdout, stderr bytes.Buffer
			args := append([]string{gcConfig(t, root, tt.delete)}, tt.args...)
			if code := gc(args, &stdout, &stderr, nil); code != tt.wantCode || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tt.wantCode, tt.wantErr)
			}
			if after := stored(t, root, held); !slices.Equal(before, after) {
				t.Errorf("a refused gc changed the store or index:\nbefore %q\nafter  %q", before, after)
			}
		})
	}
}

// Without storage.delete.enabled a dry run still reports.
func TestGCDryRunWithoutDelete(t *testing.T) {
	root := gcRoot(t, app)
	var stdout, stderr bytes.Buffer
	if code := gc([]string{"--dry-run", "--config", gcConfig(t, root, false)}, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	if !slices.Contains(lines(stdout.String()), "tags 1") {
		t.Errorf("report:\n%s", stdout.String())
	}
}

// TestGCPerUpstreamTTL: content of an upstream with a longer TTL than
// proxy.ttl stays when the default upstream's goes, and so does a layer both
// link.
func TestGCPerUpstreamTTL(t *testing.T) {
	hosted := gcImage{"b.example/team/app", "v1", []byte(`{"schemaVersion":2,"name":"b"}`), [][]byte{sharedLayer}}
	root := gcRoot(t, alpine, hosted) // last pulled two days ago
	doc := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %q}\n  delete: {enabled: true}\n"+
		"proxy:\n  ttl: 1h\nupstreams:\n  - host: b.example\n    ttl: 100h\n  - host: c.example\n", root)
	cfgPath := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(cfgPath, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := gc([]string{cfgPath}, &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr.String())
	}
	got := lines(stdout.String())
	for _, w := range []string{
		fmt.Sprintf("storage %s (ttl 1h0m0s; b.example 100h0m0s, no size cap, 0 pin patterns)", root), // c.example has proxy.ttl
		"tags 1", "manifests 1 " + units.Bytes(int64(len(alpine.manifest))), "blob links 1", "blobs 0 0 B",
	} {
		if !slices.Contains(got, w) {
			t.Errorf("no line %q in the report:\n%s", w, stdout.String())
		}
	}
	checkRepo(t, root, alpine, false)
	checkRepo(t, root, hosted, true)
}

// proxy gc also sweeps hosted blobs no manifest references, sparing young ones.
func TestGCHosted(t *testing.T) {
	ctx := context.Background()
	root := gcRoot(t)
	hostedRoot := filepath.Join(root, "hosted")
	hs, err := storage.NewFilesystem(hostedRoot)
	if err != nil {
		t.Fatal(err)
	}
	used, orphan, young := []byte("used layer"), []byte("orphan layer"), []byte("young layer")
	for _, b := range [][]byte{used, orphan, young} {
		commitBlob(t, hs, b)
	}
	manifest := []byte(fmt.Sprintf(`{"schemaVersion":2,"layers":[{"digest":%q}]}`, digest.FromBytes(used)))
	if err := hs.PutManifest(ctx, "dev/app", digest.FromBytes(manifest), manifest); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, b := range [][]byte{used, orphan, manifest} {
		d := digest.FromBytes(b)
		p := filepath.Join(hostedRoot, "docker/registry/v2/blobs/sha256", d.Encoded()[:2], d.Encoded(), "data")
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	cfgPath := gcConfig(t, root, true)
	doc, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, append(doc, []byte("hosted: {namespaces: [dev]}\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		var stdout, stderr bytes.Buffer
		args := []string{cfgPath}
		verb := "freed"
		if dry {
			args, verb = append(args, "--dry-run"), "would free"
		}
		if code := gc(args, &stdout, &stderr, nil); code != exitOK {
			t.Fatalf("dry=%v: exit %d: %s", dry, code, stderr.String())
		}
		want := fmt.Sprintf("1 manifests, 4 blobs; %s 1 unreferenced blobs, %d B (1 younger than 1h0m0s spared)", verb, len(orphan))
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("dry=%v: report lacks %q:\n%s", dry, want, stdout.String())
		}
	}
	for _, c := range []struct {
		b    []byte
		kept bool
	}{{used, true}, {young, true}, {orphan, false}, {manifest, true}} {
		if _, err := hs.StatBlob(ctx, digest.FromBytes(c.b)); (err == nil) != c.kept {
			t.Errorf("%s: stat err %v, want kept=%v", c.b, err, c.kept)
		}
	}
}
