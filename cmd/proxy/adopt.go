package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/scheduler"
	"github.com/ocimirror/proxy/storage"
)

// registry2State is distribution's proxy scheduler file, <root>/scheduler-state.json:
// a map of "repo@digest" to when the entry expires and whether it is a blob (0)
// or a manifest (1).
const registry2State = "scheduler-state.json"

type registry2Entry struct {
	Key       string    `json:"Key"`
	Expiry    time.Time `json:"ExpiryData"`
	EntryType int       `json:"EntryType"`
}

// registry2Expiries reads the scheduler file a registry:2 proxy left in root, so
// that its content keeps the expiries it had: an entry adopted from it is given
// the last access (expiry - ttl) that the TTL of its repository (ttl(repo))
// turns back into the same expiry. A missing file is no error; a corrupt one is
// reported and ignored by the caller.
//
// It reads through the store's driver, so the file is found at the top of an
// object store prefix as in a filesystem root.
func registry2Expiries(ctx context.Context, store *storage.Store, ttl func(repo string) time.Duration) (map[scheduler.Key]time.Time, error) {
	b, err := store.Driver().GetContent(ctx, "/"+registry2State)
	if errors.As(err, new(driver.PathNotFoundError)) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var state map[string]registry2Entry
	if err := json.Unmarshal(b, &state); err != nil {
		return nil, err
	}
	out := make(map[scheduler.Key]time.Time, len(state))
	for _, e := range state {
		repo, d, ok := strings.Cut(e.Key, "@")
		dgst, err := digest.Parse(d)
		if !ok || err != nil || repo == "" {
			continue
		}
		kind := scheduler.KindBlob
		if e.EntryType == 1 {
			kind = scheduler.KindManifest
		}
		out[scheduler.Key{Kind: kind, Repo: repo, Digest: dgst}] = e.Expiry.Add(-ttl(repo))
	}
	return out, nil
}
