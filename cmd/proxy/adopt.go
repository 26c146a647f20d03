package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/ocimirror/proxy/scheduler"
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
func registry2Expiries(root string, ttl func(repo string) time.Duration) (map[scheduler.Key]time.Time, error) {
	b, err := os.ReadFile(filepath.Join(root, registry2State))
	if errors.Is(err, fs.ErrNotExist) {
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
