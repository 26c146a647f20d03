package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// TestAdoptRegistry2Expiries: content of a registry:2 proxy directory keeps the
// expiry its scheduler-state.json gave it; content it does not list gets its
// link's time.
func TestAdoptRegistry2Expiries(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	store, err := storage.NewFilesystem(root)
	if err != nil {
		t.Fatal(err)
	}
	listed, unlisted := []byte("listed layer"), []byte("unlisted layer")
	for _, b := range [][]byte{listed, unlisted} {
		commitBlob(t, store, b)
		if err := store.LinkLayer(ctx, "library/alpine", digest.FromBytes(b)); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.PutManifest(ctx, "library/alpine", digest.FromBytes([]byte("{}")), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	expiry := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	state := fmt.Sprintf(`{"library/alpine@%s":{"Key":"library/alpine@%s","ExpiryData":%q,"EntryType":0},
		"library/alpine@%s":{"Key":"library/alpine@%s","ExpiryData":%q,"EntryType":1},
		"bad":{"Key":"not a reference","ExpiryData":%q,"EntryType":0}}`,
		digest.FromBytes(listed), digest.FromBytes(listed), expiry.Format(time.RFC3339),
		digest.FromBytes([]byte("{}")), digest.FromBytes([]byte("{}")), expiry.Format(time.RFC3339),
		expiry.Format(time.RFC3339))
	if err := os.WriteFile(filepath.Join(root, registry2State), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := &config.Config{}
	cfg.Storage.Filesystem.RootDirectory = root
	cfg.Proxy.TTL = 2 * time.Hour
	ix, err := openIndex(cfg, gcLogger(config.Log{Level: "error"}, os.Stderr))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	if err := reconcile(ctx, ix, store, cfg, false, gcLogger(config.Log{Level: "error"}, os.Stderr)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kind    scheduler.Kind
		content []byte
		want    time.Time // last access; zero: about now
	}{
		{scheduler.KindBlob, listed, expiry.Add(-2 * time.Hour)},
		{scheduler.KindManifest, []byte("{}"), expiry.Add(-2 * time.Hour)},
		{scheduler.KindBlob, unlisted, time.Time{}},
	} {
		e, ok := ix.Get(scheduler.Key{Kind: tc.kind, Repo: "library/alpine", Digest: digest.FromBytes(tc.content)})
		switch {
		case !ok:
			t.Errorf("%s %q not in the index", tc.kind, tc.content)
		case !tc.want.IsZero() && !e.LastAccess.Equal(tc.want):
			t.Errorf("%s %q: last access %v, want %v (expiry %v - ttl)", tc.kind, tc.content, e.LastAccess, tc.want, expiry)
		case tc.want.IsZero() && time.Since(e.LastAccess) > time.Minute:
			t.Errorf("%s %q: last access %v, want about now", tc.kind, tc.content, e.LastAccess)
		}
	}
}
