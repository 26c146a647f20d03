package main

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"

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
