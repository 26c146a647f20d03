package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	driver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// SweepTemp removes the temporary keys of uploads (under /_proxy/spool) older
// than age, and returns how many it removed. It is for drivers where a commit
// uploads; the filesystem store clears its spool when it opens.
func (s *Store) SweepTemp(ctx context.Context, age time.Duration) (int, error) {
	entries, err := s.d.List(ctx, spoolRoot)
	if err != nil {
		if errors.As(err, new(driver.PathNotFoundError)) {
			return 0, nil
		}
		return 0, fmt.Errorf("list temporary uploads: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(path.Base(e), "tmp-") {
			continue
		}
		fi, err := s.d.Stat(ctx, e)
		if err != nil || fi.IsDir() || time.Since(fi.ModTime()) < age {
			continue
		}
		if err := s.remove(ctx, e, "temporary upload "+path.Base(e)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
