package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ggcr "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// killChildEnv makes the test binary a child that runs an eviction pass on the
// configuration it names; see TestKillEvictChild.
const killChildEnv = "PROXY_KILL_EVICT_CONFIG"

// The child evicts as of this much after now: the default upstream's content
// (ttl 1h) is due, keep.example's (ttl 100h) is not.
const killEvictAhead = 2 * time.Hour

// killFixture is a storage root warmed with many images of two upstreams, its
// images by upstream, and their upstream.
type killFixture struct {
	reg    *testregistry.Registry
	root   string
	images []string // as warm and clients name them: team/app0:v1, keep.example/team/app0:v1
}

// newKillFixture pushes n repositories, every other one a two-platform index,
// every image with a base layer all share and five of its own, and warms them
// into a root: all for the default upstream, every third for keep.example (the
// same registry, so its content is shared with the default upstream's).
func newKillFixture(t *testing.T, n int) *killFixture {
	f := &killFixture{reg: testregistry.Start(t), root: t.TempDir()}
	base, err := random.Layer(300, types.OCILayer)
	must(t, err)
	image := func() ggcr.Image {
		img, err := random.Image(200, 5)
		must(t, err)
		img, err = mutate.AppendLayers(img, base)
		must(t, err)
		return img
	}
	var keep []string
	for i := range n {
		repoTag := fmt.Sprintf("team/app%d:v1", i)
		if i%2 == 0 {
			f.reg.PushIndex(t, repoTag, mutate.AppendManifests(empty.Index,
				mutate.IndexAddendum{Add: image(), Descriptor: ggcr.Descriptor{Platform: &ggcr.Platform{OS: "linux", Architecture: "amd64"}}},
				mutate.IndexAddendum{Add: image(), Descriptor: ggcr.Descriptor{Platform: &ggcr.Platform{OS: "linux", Architecture: "arm64"}}}))
		} else {
			f.reg.Push(t, repoTag, image())
		}
		f.images = append(f.images, repoTag)
		if i%3 == 0 {
			keep = append(keep, "keep.example/"+repoTag)
		}
	}
	f.images = append(f.images, keep...)
	var stdout, stderr strings.Builder
	if code := warm(append([]string{f.config(t, f.root)}, f.images...), &stdout, &stderr, nil); code != exitOK {
		t.Fatalf("warm: exit %d\n%s", code, stderr.String())
	}
	return f
}

// config writes the configuration of a root: proxy.ttl 1h, keep.example 100h.
func (f *killFixture) config(t *testing.T, root string) string {
	t.Helper()
	doc := fmt.Sprintf("version: 0.1\nlog: {level: error}\nstorage:\n  filesystem: {rootdirectory: %q}\n  delete: {enabled: true}\n"+
		"proxy:\n  remoteurl: %s\n  ttl: 1h\n  retries: 0\nupstreams:\n  - {host: keep.example, remoteurl: %s, ttl: 100h}\n",
		root, f.reg.URL, f.reg.URL)
	path := filepath.Join(t.TempDir(), "config.yml")
	must(t, os.WriteFile(path, []byte(doc), 0o600))
	return path
}

// TestKill9DuringEviction kills a process running an eviction pass over many
// expired items at random points (SIGKILL), twice in a row on the same root,
// and checks after each kill that the store and the index are consistent: no
// half-written file, the index opens and, reconciled, holds exactly what the
// store serves, every tag names a stored manifest, every stored manifest has
// what it references, no content is left that the index does not account for,
// and the content that was not due is untouched. After the last round a pull
// of every image through the cache works, fetching again what went. Bounded:
// at most 3 rounds, no new round after 30s.
func TestKill9DuringEviction(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("PROXY_KILL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (PROXY_KILL_SEED reruns it)", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	f := newKillFixture(t, 12)
	start := time.Now()
	var root, cfgPath string
	for round := 0; round < 3 && time.Since(start) < 30*time.Second; round++ {
		root = filepath.Join(t.TempDir(), "root")
		copyTree(t, f.root, root)
		cfgPath = f.config(t, root)
		for kill := range 2 {
			planned, at := killDuringEviction(t, cfgPath, rnd)
			t.Logf("round %d, kill %d: after %d of %d deletions", round, kill, at, planned)
			f.checkConsistent(t, root, cfgPath)
		}
	}
	f.pullEverything(t, root, cfgPath)
}

// killDuringEviction runs the child on cfgPath and SIGKILLs it after a random
// number of its deletions (its pass may also end first). It returns how many
// deletions the child planned and after how many the kill was sent.
func killDuringEviction(t *testing.T, cfgPath string, rnd *rand.Rand) (planned, at int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillEvictChild$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+cfgPath)
	out, err := cmd.StdoutPipe()
	must(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(out); sc.Scan(); {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(30 * time.Second)
	target := -1
	planned = -1
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			switch {
			case !ok || l == "DONE":
				done = true
			case strings.HasPrefix(l, "PLAN "):
				planned, _ = strconv.Atoi(strings.TrimPrefix(l, "PLAN "))
				target = rnd.IntN(planned + 2) // planned+1: kill once the pass ended
			case l == "D":
				at++
			}
			done = done || (target >= 0 && at >= target)
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("the child did not get through its pass within 30s; stderr:\n%s", stderr.String())
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	for range lines { // drained: the reader goroutine ends
	}
	if planned < 0 {
		t.Fatalf("the child died before planning; stderr:\n%s", stderr.String())
	}
	return planned, at
}

// TestKillEvictChild is the child of TestKill9DuringEviction: it opens the
// root as serve does (index, store, reconcile), plans a pass as of
// killEvictAhead from now, prints "PLAN <deletions>", runs the pass printing
// "D" after every deletion, and prints "DONE". It does nothing in a normal run.
func TestKillEvictChild(t *testing.T) {
	cfgPath := os.Getenv(killChildEnv)
	if cfgPath == "" {
		t.Skip("the child process of TestKill9DuringEviction")
	}
	cfg, err := config.Load(cfgPath, nil)
	must(t, err)
	log := gcLogger(config.Log{Level: "error"}, os.Stderr)
	ix, err := openIndex(cfg, log)
	must(t, err)
	defer ix.Close()
	store, err := storage.NewFilesystem(cfg.Storage.Filesystem.RootDirectory)
	must(t, err)
	ctx := context.Background()
	must(t, reconcile(ctx, ix, store, cfg, cfg.Storage.Delete.Enabled, log))
	ev := scheduler.NewEvictor(ix, tellingDeleter{cache.Deleter{Store: store}}, evictorOptions(cfg)...)
	now := time.Now().Add(killEvictAhead)
	st := ev.Plan(now)
	fmt.Printf("PLAN %d\n", st.Tags+st.Manifests+st.Links+st.Blobs)
	if _, err := ev.EvictOnce(ctx, now); err != nil {
		t.Error(err)
	}
	fmt.Println("DONE")
}

// tellingDeleter prints "D" on stdout after every deletion, for the parent to
// count.
type tellingDeleter struct{ cache.Deleter }

func (d tellingDeleter) tell(err error) error {
	fmt.Println("D")
	return err
}

func (d tellingDeleter) DeleteTag(ctx context.Context, repo, tag string) error {
	return d.tell(d.Deleter.DeleteTag(ctx, repo, tag))
}

func (d tellingDeleter) DeleteManifest(ctx context.Context, repo string, dgst digest.Digest) error {
	return d.tell(d.Deleter.DeleteManifest(ctx, repo, dgst))
}

func (d tellingDeleter) UnlinkBlob(ctx context.Context, repo string, dgst digest.Digest) error {
	return d.tell(d.Deleter.UnlinkBlob(ctx, repo, dgst))
}

func (d tellingDeleter) DeleteBlob(ctx context.Context, dgst digest.Digest) error {
	return d.tell(d.Deleter.DeleteBlob(ctx, dgst))
}

// copyTree copies the directory src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o750)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o640)
	})
	must(t, err)
}

// checkFiles checks every file under root: blob data hashes to its digest,
// every link holds a digest (its directory's, for layer and revision links),
// and no spool or temporary file was left.
func checkFiles(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch dir := filepath.Base(filepath.Dir(p)); {
		case strings.HasPrefix(rel, filepath.Join("_proxy", "scheduler.db")):
		case d.Name() == "data" && strings.Contains(rel, "/blobs/"):
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != dir {
				t.Errorf("%s: content does not hash to its digest (%d bytes)", rel, len(b))
			}
		case d.Name() == "link" && strings.Contains(rel, "/repositories/"):
			ld, err := digest.Parse(string(b))
			layerOrRevision := strings.Contains(rel, "/_layers/") || strings.Contains(rel, "/revisions/")
			if err != nil || (layerOrRevision && ld.Encoded() != dir) {
				t.Errorf("%s: link %q is no digest of its directory", rel, b)
			}
		default:
			t.Errorf("%s: a file that should not be there (%d bytes)", rel, len(b))
		}
		return nil
	})
	must(t, err)
}

// checkConsistent checks the root after a kill, as the next start sees it.
func (f *killFixture) checkConsistent(t *testing.T, root, cfgPath string) {
	t.Helper()
	checkFiles(t, root)
	ctx := context.Background()
	cfg, err := config.Load(cfgPath, nil)
	must(t, err)
	log := gcLogger(config.Log{Level: "error"}, io.Discard)
	ix, err := openIndex(cfg, log)
	must(t, err)
	defer ix.Close()
	if ix.Rebuilt() {
		t.Error("the index was corrupt after the kill")
	}
	store, err := storage.NewFilesystem(root)
	must(t, err)
	must(t, reconcile(ctx, ix, store, cfg, cfg.Storage.Delete.Enabled, log))
	n := 0
	err = store.Walk(ctx, func(it storage.Item) {
		n++
		if _, ok := ix.Get(itemKey(it)); !ok {
			t.Errorf("%s is stored but not in the index", itemKey(it))
		}
		checkItem(t, store, it)
	})
	must(t, err)
	if ix.Len() != n {
		t.Errorf("the index has %d entries for %d stored items", ix.Len(), n)
	}
	var onDisk int64
	must(t, store.Blobs(ctx, func(b storage.BlobInfoAt) {
		onDisk += b.Size
	}))
	if onDisk != ix.TotalSize() {
		t.Errorf("%d bytes of content on disk, the index accounts for %d: content leaked", onDisk, ix.TotalSize())
	}
	for _, img := range f.images {
		if strings.HasPrefix(img, "keep.example/") {
			repo, tag, _ := strings.Cut(img, ":")
			if _, err := store.ResolveTag(ctx, repo, tag); err != nil {
				t.Errorf("%s, not due, is gone: %v", img, err)
			}
		}
	}
}

// checkItem checks that a stored item can be served whole: a tag names a
// stored manifest, a manifest's children, config and layers are stored in its
// repository, a blob link has its content.
func checkItem(t *testing.T, store *storage.Store, it storage.Item) {
	t.Helper()
	ctx := context.Background()
	switch it.Kind {
	case storage.ItemTag:
		if _, err := store.GetManifest(ctx, it.Repo, it.Digest); err != nil {
			t.Errorf("tag %s:%s names manifest %s: %v", it.Repo, it.Tag, it.Digest, err)
		}
	case storage.ItemBlob:
		if _, err := store.StatBlob(ctx, it.Digest); err != nil || !store.HasLayer(ctx, it.Repo, it.Digest) {
			t.Errorf("blob %s@%s: %v", it.Repo, it.Digest, err)
		}
	case storage.ItemManifest:
		body, err := store.GetManifest(ctx, it.Repo, it.Digest)
		var m platformManifest
		if err == nil {
			err = json.Unmarshal(body, &m)
		}
		if err != nil {
			t.Errorf("manifest %s@%s: %v", it.Repo, it.Digest, err)
			return
		}
		for _, c := range m.Manifests {
			if _, err := store.GetManifest(ctx, it.Repo, digest.Digest(c.Digest)); err != nil {
				t.Errorf("index %s@%s: platform manifest %s: %v", it.Repo, it.Digest, c.Digest, err)
			}
		}
		for _, b := range append(m.Layers, m.Config) {
			if b.Digest == "" { // an index has no config
				continue
			}
			if _, err := store.StatBlob(ctx, b.Digest); err != nil || !store.HasLayer(ctx, it.Repo, b.Digest) {
				t.Errorf("manifest %s@%s: blob %s: %v, linked %v", it.Repo, it.Digest, b.Digest, err, store.HasLayer(ctx, it.Repo, b.Digest))
			}
		}
	}
}

// pullEverything pulls every image through a mirror serving root, then checks
// each is stored whole again.
func (f *killFixture) pullEverything(t *testing.T, root, cfgPath string) {
	t.Helper()
	srv, stop := serveRoot(t, cfgPath)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, img := range f.images {
		pullAll(t, host, img)
	}
	stop()
	store, err := storage.NewFilesystem(root)
	must(t, err)
	ix := openTestIndex(t, root)
	defer ix.Close()
	err = store.Walk(context.Background(), func(it storage.Item) { checkItem(t, store, it) })
	must(t, err)
	for _, img := range f.images {
		repo, tag, _ := strings.Cut(img, ":")
		if _, err := store.ResolveTag(context.Background(), repo, tag); err != nil {
			t.Errorf("after pulling everything: %s: %v", img, err)
		}
		if _, ok := ix.Get(scheduler.Key{Kind: scheduler.KindTag, Repo: repo, Tag: tag}); !ok {
			t.Errorf("after pulling everything: %s not in the index", img)
		}
	}
}
