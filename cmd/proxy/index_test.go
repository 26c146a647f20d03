package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/storage"
)

// TestReconcileSweepsUnlinked: content no repository links (what a kill
// between an eviction's unlinking and deleting leaves) is deleted at start
// when deleting is allowed, and only then; linked content stays.
func TestReconcileSweepsUnlinked(t *testing.T) {
	unlinked := []byte("content whose last link an eviction removed")
	tests := []struct {
		name     string
		args     []string // gc's, after the configuration
		delete   bool
		wantGone bool
	}{
		{"gc sweeps", nil, true, true},
		{"gc --dry-run leaves it", []string{"--dry-run"}, true, false},
		{"delete disabled leaves it", []string{"--dry-run"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			root := gcRoot(t, app)
			store, err := storage.NewFilesystem(root)
			must(t, err)
			commitBlob(t, store, unlinked)
			var stdout, stderr bytes.Buffer
			cfgPath := gcConfig(t, root, tt.delete, "team/app") // pinned: nothing is evicted
			if code := gc(append([]string{cfgPath}, tt.args...), &stdout, &stderr, nil); code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			_, err = store.StatBlob(ctx, digest.FromBytes(unlinked))
			if gone := errors.Is(err, storage.ErrNotFound); gone != tt.wantGone {
				t.Errorf("unlinked content gone: %v, want %v (%v)", gone, tt.wantGone, err)
			}
			for _, l := range app.layers {
				if !store.HasLayer(ctx, app.repo, digest.FromBytes(l)) {
					t.Errorf("linked layer %s of %s is gone", digest.FromBytes(l), app.repo)
				}
			}
		})
	}
}

// TestReconcileSparesRecentInCluster: a replica of a cluster starting does not
// sweep unlinked content stored lately, which may be another replica's fill
// about to be linked; older unlinked content it sweeps as a single node does.
func TestReconcileSparesRecentInCluster(t *testing.T) {
	ctx := context.Background()
	root := gcRoot(t, app)
	store, err := storage.NewFilesystem(root)
	must(t, err)
	recent, old := []byte("just filled by another replica"), []byte("left by an interrupted eviction")
	commitBlob(t, store, recent)
	commitBlob(t, store, old)
	oldPath := filepath.Join(root, "docker/registry/v2/blobs/sha256", digest.FromBytes(old).Hex()[:2], digest.FromBytes(old).Hex(), "data")
	past := time.Now().Add(-2 * sweepMargin)
	must(t, os.Chtimes(oldPath, past, past))
	cfg, err := config.Load(gcConfig(t, root, true), nil)
	must(t, err)
	cfg.Redis.Addrs = []string{"127.0.0.1:1"} // a cluster (never contacted here)
	ix, err := openIndex(cfg, gcLogger(config.Log{Level: "error"}, os.Stderr))
	must(t, err)
	defer ix.Close()
	must(t, reconcile(ctx, ix, store, cfg, true, gcLogger(config.Log{Level: "error"}, os.Stderr)))
	if _, err := store.StatBlob(ctx, digest.FromBytes(recent)); err != nil {
		t.Errorf("recent unlinked content swept in a cluster: %v", err)
	}
	if _, err := store.StatBlob(ctx, digest.FromBytes(old)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("old unlinked content not swept: %v", err)
	}
}
