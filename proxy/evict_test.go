package proxy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/internal/testregistry"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// TestEvictionAfterTTL: with a short TTL, content nobody pulls is evicted from
// disk, and a later pull simply fetches it again.
func TestEvictionAfterTTL(t *testing.T) {
	reg := testregistry.Start(t)
	img := reg.PushRandom(t, "ev/app:v1", 2000, 2)
	root := t.TempDir()
	ix, err := scheduler.Open(filepath.Join(root, "_proxy", "scheduler.db"),
		scheduler.WithTTL(time.Second), scheduler.WithFlushInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	m := startMirrorIndexed(t, root, reg.URL, nil, ix)
	t.Cleanup(func() { _ = ix.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		scheduler.NewEvictor(ix, cache.Deleter{Store: m.Store, Caches: []*cache.Cache{m.Cache}}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	m.pull(t, "ev/app:v1")
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	if _, err := m.Store.StatBlob(ctx, digestFromHash(digestOf(t, img))); err != nil {
		t.Fatalf("manifest not stored: %v", err)
	}
	// tag, manifest, config, 2 layers; a fill records its blob after the
	// client has the last byte, so allow it a moment (the TTL is 1s).
	for wait := time.Now().Add(900 * time.Millisecond); ix.Len() != 5 && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ix.Len(); n != 5 && n != 0 {
		t.Fatalf("index holds %d entries, want 5", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errL := m.Store.StatBlob(ctx, digestFromHash(ld))
		_, errT := m.Store.ResolveTag(ctx, "ev/app", "v1")
		if errors.Is(errL, storage.ErrNotFound) && errors.Is(errT, storage.ErrNotFound) && ix.Len() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not evicted 10s after a 1s TTL: layer %v, tag %v, %d entries", errL, errT, ix.Len())
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := reg.Count("GET", "blobs")
	if got := digestOf(t, m.pull(t, "ev/app:v1")); got != digestOf(t, img) {
		t.Fatalf("pull after eviction: %s", got)
	}
	if reg.Count("GET", "blobs") <= before {
		t.Fatal("pull after eviction made no upstream blob GET")
	}
}

func digestFromHash(h interface{ String() string }) digest.Digest { return digest.Digest(h.String()) }

// TestReadSurvivesEviction: a client half way through a cached blob keeps
// the blob from the server's eviction (it is in use), and keeps reading the
// right bytes when a deletion that cannot see it (a pass of gc's deleter,
// which knows no readers) deletes the blob under it.
func TestReadSurvivesEviction(t *testing.T) {
	content := make([]byte, 12<<20) // more than loopback socket buffers hold
	_, _ = rand.Read(content)
	ld := digest.FromBytes(content)
	up := liar(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		_, _ = w.Write(content)
	})
	root := t.TempDir()
	ix, err := scheduler.Open(filepath.Join(root, "_proxy", "scheduler.db"), scheduler.WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	m := startMirrorIndexed(t, root, up.URL, nil, ix)
	if code, _, body := get(t, "GET", m.URL+"/v2/ev/big/blobs/"+ld.String(), nil); code != 200 || len(body) != len(content) {
		t.Fatalf("fill: %d, %d bytes", code, len(body))
	}
	for wait := time.Now().Add(3 * time.Second); m.Cache.Filling(ld) && time.Now().Before(wait); {
		time.Sleep(10 * time.Millisecond)
	}

	resp, err := http.Get(m.URL + "/v2/ev/big/blobs/" + ld.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1000); err != nil {
		t.Fatal(err)
	}
	ev := scheduler.NewEvictor(ix, cache.Deleter{Store: m.Store, Caches: []*cache.Cache{m.Cache}})
	st, err := ev.EvictOnce(context.Background(), time.Now().Add(2*time.Hour))
	if err != nil || st.Blobs != 0 || st.Skipped == 0 {
		t.Fatalf("eviction pass during the read: %+v %v; want the layer skipped, in use", st, err)
	}
	ev = scheduler.NewEvictor(ix, cache.Deleter{Store: m.Store})
	st, err = ev.EvictOnce(context.Background(), time.Now().Add(2*time.Hour))
	if err != nil || st.Blobs == 0 {
		t.Fatalf("eviction pass: %+v %v", st, err)
	}
	if _, err := m.Store.StatBlob(context.Background(), ld); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("layer still stored after eviction: %v", err)
	}
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatalf("read after eviction: %v", err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != ld.String() {
		t.Fatalf("read across eviction hashes to %s, want %s", got, ld)
	}
}
